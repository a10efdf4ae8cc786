"""Untrusted bytes -> model input, the same way at indexing time and at search time."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from encoder.images import DEFAULT_MAX_PIXELS, decode_image
from encoder.model import EncoderConfig
from encoder.transforms import eval_transform


class Preprocessor:
    """``preprocessor(data)`` -> (3, S, S) float tensor for ``config``'s encoder.

    JPEGs are decoded at a reduced DCT scale (never below twice the model's input size), so a
    12-megapixel photo costs a fraction of a full decode. Raises ``ImageDecodeError``.
    """

    def __init__(self, config: EncoderConfig, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        self.max_pixels = max_pixels
        self.draft_size = 2 * config.image_size
        self.transform = eval_transform(config.image_size, config.mean, config.std)

    def __call__(self, data: bytes, crop: Crop | None = None) -> torch.Tensor:
        """``crop``: the region (fractions of width and height) the shopper marked, or all of it."""
        if crop is None:
            return self.transform(decode_image(data, self.max_pixels, draft_size=self.draft_size))
        # decode finely enough that the cropped region still has the pixels the model needs
        draft = int(self.draft_size / max(min(crop.w, crop.h), 1e-3))
        image = decode_image(data, self.max_pixels, draft_size=draft)
        return self.transform(image.crop(crop.box(*image.size)))


@dataclass(frozen=True)
class Crop:
    """A region of a photo as fractions of its size: left ``x``, top ``y``, width ``w``, height ``h``."""

    x: float
    y: float
    w: float
    h: float

    def __post_init__(self) -> None:
        if not (0 <= self.x < 1 and 0 <= self.y < 1 and 0 < self.w <= 1 and 0 < self.h <= 1):
            raise ValueError("crop x, y must be in [0, 1) and w, h in (0, 1]")
        if self.x + self.w > 1 + 1e-6 or self.y + self.h > 1 + 1e-6:
            raise ValueError("the crop reaches outside the photo (x + w or y + h over 1)")

    @classmethod
    def parse(cls, text: str) -> Crop:
        """From ``"x,y,w,h"``; ``ValueError`` with a plain message otherwise."""
        parts = text.split(",")
        try:
            values = [float(p) for p in parts]
        except ValueError:
            values = []
        if len(values) != 4:
            raise ValueError(f"crop must be four numbers x,y,w,h (fractions of the photo), not {text!r}")
        return cls(*values)

    def box(self, width: int, height: int) -> tuple[int, int, int, int]:
        """The pixel box (left, top, right, bottom) in an image of ``width`` x ``height``, >= 1 px."""
        left, top = int(self.x * width), int(self.y * height)
        right = min(width, max(left + 1, round((self.x + self.w) * width)))
        bottom = min(height, max(top + 1, round((self.y + self.h) * height)))
        return left, top, right, bottom
