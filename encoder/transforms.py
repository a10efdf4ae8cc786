"""Normalisation constants and the evaluation transform shared by index/ and app/.

Training augmentations live in ``training/augment.py`` and build on the same constants, so the
encoder always sees pixels normalised the way its weights expect.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from PIL import Image
from torchvision.transforms import v2

from encoder.images import MAX_ASPECT

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
# EfficientNet-Lite was trained on inputs scaled to [-1, 1]: mean 0.5 and std 0.5 per channel.
HALF_MEAN: tuple[float, float, float] = (0.5, 0.5, 0.5)
HALF_STD: tuple[float, float, float] = (0.5, 0.5, 0.5)

_HALF_NORMALISED_ARCHS = frozenset({"efficientnet_lite0"})


def normalization_for(arch: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Return the (mean, std) an architecture's weights were trained with."""
    if arch in _HALF_NORMALISED_ARCHS:
        return HALF_MEAN, HALF_STD
    return IMAGENET_MEAN, IMAGENET_STD


def to_normalised_tensor(mean: tuple[float, ...], std: tuple[float, ...]) -> v2.Compose:
    """PIL image -> float tensor (3, H, W) normalised with ``mean``/``std``."""
    return v2.Compose(
        [
            v2.ToImage(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(mean=list(mean), std=list(std)),
        ]
    )


def eval_transform(
    image_size: int, mean: tuple[float, ...], std: tuple[float, ...], max_aspect: float = MAX_ASPECT
) -> Callable[[Image.Image], torch.Tensor]:
    """The deterministic preprocessing for indexing and search.

    Resizes the shorter side to ``image_size`` and centre-crops a square, so a portrait product
    photo keeps its middle. Returns a callable mapping an RGB PIL image to a tensor
    (3, image_size, image_size). The longer side is never resized past ``max_aspect`` times
    ``image_size`` (the uploads' aspect bound, so no accepted photo is affected): a backstop
    should an extreme shape reach it, which would otherwise cost gigabytes.
    """
    return v2.Compose(
        [
            v2.Resize(
                image_size,
                interpolation=v2.InterpolationMode.BICUBIC,
                max_size=round(image_size * max_aspect),
                antialias=True,
            ),
            v2.CenterCrop(image_size),
            to_normalised_tensor(mean, std),
        ]
    )
