"""Synthetic shopper views of a catalog photo: what a phone makes of a product on a shelf.

A perspective tilt (each corner moved by up to 12 % of the side), a slight blur, uneven light
(a glare spot and an exposure change), a smaller picture (60 %) and strong JPEG compression
(quality 40). Seeded, so a store's decision can be repeated.
"""

from __future__ import annotations

import io

import cv2
import numpy as np
from PIL import Image

TILT = 0.12
SCALE = 0.6
JPEG_QUALITY = 40


def shopper_view(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """An RGB photo -> a synthetic shopper's photo of it (RGB)."""
    pixels = np.asarray(image.convert("RGB"))
    h, w = pixels.shape[:2]
    corners = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    moved = corners + (rng.uniform(-TILT, TILT, (4, 2)) * [w, h]).astype(np.float32)
    moved -= moved.min(0)
    size = (max(1, int(moved[:, 0].max())), max(1, int(moved[:, 1].max())))
    warp = cv2.getPerspectiveTransform(corners, moved)
    out = cv2.warpPerspective(pixels, warp, size, borderMode=cv2.BORDER_REFLECT)
    out = cv2.GaussianBlur(out, (0, 0), 1.2)
    yy, xx = np.mgrid[: size[1], : size[0]]
    cx, cy = rng.uniform(0, size[0]), rng.uniform(0, size[1])
    glare = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * (0.15 * max(size)) ** 2)) * 120  # (H, W)
    lit = out.astype(np.float32) * rng.uniform(0.7, 1.1) + glare[..., None]
    view = Image.fromarray(np.clip(lit, 0, 255).astype(np.uint8))
    view = view.resize(
        (max(1, int(size[0] * SCALE)), max(1, int(size[1] * SCALE))), Image.Resampling.BILINEAR
    )
    buffer = io.BytesIO()
    view.save(buffer, "JPEG", quality=JPEG_QUALITY)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
