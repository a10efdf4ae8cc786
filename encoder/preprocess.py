"""Untrusted bytes -> model input, the same way at indexing time and at search time."""

from __future__ import annotations

import torch

from encoder.crop import Crop
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
        return self.transform(decode_image(data, self.max_pixels, self.draft_size, crop))
