"""Pictures for the local-feature tests, made here: printed "covers" (textured, like a DVD cover or a
cereal box) and shopper-like photos of them (cropped, seen in perspective, on another background)."""

from __future__ import annotations

import io

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFilter

DEMO_PHOTO = "demo/catalog/shirt/SHIRT-003.jpg"  # a plain garment photo, used as a background


def cover(seed: int, size: tuple[int, int] = (400, 560)) -> Image.Image:
    """A busy printed surface: random boxes, discs, lines and letters on a tinted ground."""
    rng = np.random.default_rng(seed)
    w, h = size
    image = Image.new("RGB", size, tuple(int(c) for c in rng.integers(0, 256, 3)))
    photo = rng.integers(0, 256, (h // 8, w // 8, 3)).astype(np.uint8)  # a blurry "picture" on the cover
    pw, ph = int(rng.integers(w // 3, w // 2)), int(rng.integers(h // 4, h // 2))
    where = (int(rng.integers(0, w - pw)), int(rng.integers(0, h - ph)))
    image.paste(Image.fromarray(photo).resize((pw, ph), Image.Resampling.BICUBIC), where)
    draw = ImageDraw.Draw(image)
    for _ in range(220):
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        x1, y1 = x0 + int(rng.integers(4, 60)), y0 + int(rng.integers(4, 60))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        shape = rng.integers(0, 4)
        if shape == 0:
            draw.rectangle((x0, y0, x1, y1), fill=colour)
        elif shape == 1:
            draw.ellipse((x0, y0, x1, y1), fill=colour)
        elif shape == 2:
            draw.line((x0, y0, x1, y1), fill=colour, width=int(rng.integers(1, 5)))
        else:
            draw.text((x0, y0), "".join(rng.choice(list("ABCDEFGHKMNPRSTXYZ"), 6)), fill=colour)
    return image


def shopper_photo(product: Image.Image, background: Image.Image, seed: int = 0) -> Image.Image:
    """``product`` cropped by 8 % on two sides, seen in perspective, shrunk onto ``background``,
    slightly blurred and darker: a phone photo of it in a shop."""
    rng = np.random.default_rng(seed)
    w, h = product.size
    part = np.asarray(product.crop((int(0.08 * w), 0, w, int(0.92 * h))))
    ph, pw = part.shape[:2]
    canvas = np.asarray(background.convert("RGB").resize((640, 480)))
    corners = np.float32([[0, 0], [pw, 0], [pw, ph], [0, ph]])
    jitter = rng.uniform(-25, 25, (4, 2))
    placed = np.float32([[180, 60], [430, 90], [440, 420], [170, 440]]) + jitter  # a tilted quad
    warp = cv2.getPerspectiveTransform(corners, placed.astype(np.float32))
    seen = cv2.warpPerspective(part, warp, (640, 480))
    mask = cv2.warpPerspective(np.full((ph, pw), 255, np.uint8), warp, (640, 480)) > 0
    photo = np.where(mask[..., None], (seen * 0.85).astype(np.uint8), canvas)
    return Image.fromarray(photo).filter(ImageFilter.GaussianBlur(0.8))


def jpeg(image: Image.Image, quality: int = 85) -> bytes:
    out = io.BytesIO()
    image.convert("RGB").save(out, "JPEG", quality=quality)
    return out.getvalue()
