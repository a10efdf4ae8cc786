"""Background replacement: a packshot on a plain background put into a cluttered scene.

Catalog photos are often the product alone on white (or another plain colour); the shopper's
photo shows it on a table, a shelf, a bed. ``BackgroundReplacement`` finds the plain background
of a packshot (a near-uniform border, and everything of that colour connected to it), shrinks
the product and places it on a random crop of another photo of the training set, drawn by a
``RandomPhotoCrop`` over the dataset's paths. A photo without a plain border is left as it is.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

# The plain-background test runs on a copy this size (longer side): cheap at any resolution.
THUMBNAIL = 96


def _uniform(low: float, high: float) -> float:
    return float(torch.empty(()).uniform_(low, high))


def plain_background_mask(
    image: Image.Image, tolerance: int = 20, border: float = 0.02, min_share: float = 0.6
) -> Image.Image | None:
    """Where ``image`` shows a plain background: an "L" mask of the thumbnail (255 background,
    0 product), or None when the photo has no plain border.

    The border (a strip of ``border`` x the side on each edge) is plain when at least
    ``min_share`` of its pixels lie within ``tolerance`` (per channel) of their median colour.
    The background is then every pixel of that colour connected to the border, so a white
    product on white keeps its inside.
    """
    factor = THUMBNAIL / max(image.size)
    size = (max(1, round(image.width * factor)), max(1, round(image.height * factor)))
    thumb = image.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
    pixels = np.asarray(thumb, dtype=np.int16)  # (h, w, 3)
    h, w = pixels.shape[:2]
    b = max(2, round(border * min(h, w)))
    edge = np.zeros((h, w), dtype=bool)
    edge[:b], edge[-b:], edge[:, :b], edge[:, -b:] = True, True, True, True
    colour = np.median(pixels[edge], axis=0)  # (3,)
    near = (np.abs(pixels - colour).max(axis=2) <= tolerance).astype(np.uint8)  # (h, w)
    if near[edge].mean() < min_share:
        return None
    _, labels = cv2.connectedComponents(near, connectivity=4)  # (h, w) component ids, 0 = not near
    touching = np.unique(labels[edge & (near == 1)])
    background = np.isin(labels, touching) & (near == 1)
    # One pixel more of background all round: the soft edge of the scaled-up mask then falls
    # inside the product, not on a halo of the old background.
    background = cv2.dilate(background.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    return Image.fromarray(background.astype(np.uint8) * 255)


class RandomPhotoCrop:
    """``sampler(width, height)`` -> a random crop of a random photo among ``paths``, resized to
    (width, height): the scene a product is placed in.

    JPEGs are decoded at a reduced scale (Pillow's draft mode) when the crop allows it, so a
    large photo costs little more than a small one. A photo that cannot be read raises with
    its path.
    """

    def __init__(self, paths: Sequence[str | Path], scale: tuple[float, float] = (0.2, 1.0)) -> None:
        if not paths:
            raise ValueError("RandomPhotoCrop needs at least one photo")
        if not 0 < scale[0] <= scale[1] <= 1:
            raise ValueError(f"scale must satisfy 0 < min <= max <= 1, got {scale}")
        self.paths = [Path(p) for p in paths]
        self.scale = scale

    def __call__(self, width: int, height: int) -> Image.Image:
        path = self.paths[int(torch.randint(len(self.paths), ()))]
        try:
            with Image.open(path) as raw:
                raw.draft("RGB", (width, height))  # decodes at 1/2, 1/4, 1/8 when that suffices
                photo = raw.convert("RGB")
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path}: cannot read it as a background ({exc})") from exc
        pw, ph = photo.size
        area = _uniform(*self.scale) * pw * ph
        cw = min(pw, max(1, round((area * width / height) ** 0.5)))  # the target's aspect ratio
        ch = min(ph, max(1, round(cw * height / width)))
        x0, y0 = int(torch.randint(pw - cw + 1, ())), int(torch.randint(ph - ch + 1, ()))
        return photo.resize((width, height), Image.Resampling.BILINEAR, box=(x0, y0, x0 + cw, y0 + ch))


class BackgroundReplacement:
    """With probability ``p``, a packshot's plain background is replaced by a crop of another
    photo (``backgrounds(width, height)``, e.g. a ``RandomPhotoCrop`` over the training set),
    and the product, cut out along the background mask with soft edges, is shrunk to ``scale``
    of the largest size that fits and placed at a random position. The output keeps the
    input's size. A photo without a plain border (``plain_background_mask``) is returned as is,
    and so is one where the product covers less than 2% or more than 95% of the photo.

    About 13 ms per 500x500 packshot, the background drawn from the 240x320 demo JPEGs; 2 ms
    for a photo without a plain border (the test runs on a 96 px thumbnail). Measured on 2 busy
    cores (``bench/shopper_augment.py``): upper bounds. It runs on the full photo, before the
    crop, so its cost grows with the catalog's resolution.
    """

    def __init__(
        self,
        backgrounds: Callable[[int, int], Image.Image],
        p: float = 0.5,
        scale: tuple[float, float] = (0.5, 0.95),
        tolerance: int = 20,
    ) -> None:
        if not 0 <= p <= 1:
            raise ValueError(f"p must be in [0, 1], got {p}")
        if not 0 < scale[0] <= scale[1] <= 1:
            raise ValueError(f"scale must satisfy 0 < min <= max <= 1, got {scale}")
        self.backgrounds, self.p, self.scale, self.tolerance = backgrounds, p, scale, tolerance

    def __call__(self, image: Image.Image) -> Image.Image:
        if self.p == 0 or float(torch.rand(())) >= self.p:
            return image
        background = plain_background_mask(image, self.tolerance)
        if background is None:
            return image
        product = np.asarray(background) == 0  # (h, w) on the thumbnail
        if not 0.02 <= product.mean() <= 0.95:
            return image
        w, h = image.size
        # The thumbnail's mask scaled up with bilinear interpolation: soft edges for free.
        mask = Image.fromarray(product.astype(np.uint8) * 255).resize((w, h), Image.Resampling.BILINEAR)
        left, top, right, bottom = mask.getbbox() or (0, 0, w, h)
        bw, bh = right - left, bottom - top
        factor = min(w / bw, h / bh) * _uniform(*self.scale)
        size = (max(1, round(bw * factor)), max(1, round(bh * factor)))
        cut = image.resize(size, Image.Resampling.BILINEAR, box=(left, top, right, bottom))
        cut_mask = mask.resize(size, Image.Resampling.BILINEAR, box=(left, top, right, bottom))
        x = int(torch.randint(w - size[0] + 1, ()))
        y = int(torch.randint(h - size[1] + 1, ()))
        scene = self.backgrounds(w, h)
        if scene.size != (w, h) or scene.mode != "RGB":
            raise ValueError(f"backgrounds({w}, {h}) returned a {scene.mode} image of {scene.size}")
        scene.paste(cut, (x, y), cut_mask)
        return scene
