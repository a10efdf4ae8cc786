"""The two-view training transform of SimCLR, built on the encoder's normalisation constants."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image, ImageFilter
from torchvision.transforms import v2

from encoder.transforms import to_normalised_tensor
from training.background import BackgroundReplacement, RandomPhotoCrop
from training.shopper import (
    ExposureShift,
    Glare,
    HandOcclusion,
    JpegRecompression,
    MotionBlur,
    RandomPerspectiveWarp,
    SmallRotation,
    WhiteBalanceShift,
)


@dataclass
class AugmentConfig:
    """Strength of each augmentation. Defaults follow SimCLR, except hue jitter, off by default:
    a product's colour is often its identity (a red dress is not the blue one)."""

    image_size: int = 224
    crop_scale: tuple[float, float] = (0.2, 1.0)
    jitter_strength: float = 0.4  # brightness, contrast and saturation
    hue: float = 0.0  # measured: hue jitter 0.05 lost 0.027 recall@1 on clothing-small
    jitter_p: float = 0.8
    grayscale_p: float = 0.2
    blur_p: float = 0.5
    # Shopper-photo augmentations (training/shopper.py, training/background.py): the probability
    # of each, all 0 (off) until measured; SHOPPER_PRESET is what `--shopper-augment` turns on.
    background_p: float = 0.0
    background_scale: tuple[float, float] = (0.5, 0.95)  # product size vs the largest that fits
    perspective_p: float = 0.0
    perspective_distortion: float = 0.3
    rotation_p: float = 0.0
    rotation_degrees: float = 8.0
    occlusion_p: float = 0.0
    occlusion_scale: tuple[float, float] = (0.05, 0.2)  # share of the view covered
    glare_p: float = 0.0
    glare_strength: tuple[float, float] = (0.4, 0.9)
    white_balance_p: float = 0.0
    white_balance_shift: float = 0.15
    exposure_p: float = 0.0
    exposure_stops: float = 0.7
    motion_blur_p: float = 0.0
    motion_blur_length: tuple[int, int] = (3, 11)  # pixels at 500 px, scaled with the view
    jpeg_p: float = 0.0
    jpeg_quality: tuple[int, int] = (20, 70)


class RandomGaussianBlur:
    """Gaussian blur with sigma drawn uniformly from ``sigma`` (as in SimCLR and MoCo v2).

    Pillow's blur on the already cropped view: about 7x cheaper than torchvision's tensor blur,
    which matters on CPU, where the data pipeline shares the cores with the model.
    """

    def __init__(self, sigma: tuple[float, float] = (0.1, 2.0)) -> None:
        self.sigma = sigma

    def __call__(self, image: Image.Image) -> Image.Image:
        radius = float(torch.empty(()).uniform_(*self.sigma))
        return image.filter(ImageFilter.GaussianBlur(radius=radius))


# `--shopper-augment`: a plausible mix, not yet tuned (costs: bench/shopper_augment.py).
SHOPPER_PRESET: dict[str, float] = {
    "background_p": 0.5,
    "perspective_p": 0.5,
    "rotation_p": 0.3,
    "occlusion_p": 0.2,
    "glare_p": 0.2,
    "white_balance_p": 0.5,
    "exposure_p": 0.3,
    "motion_blur_p": 0.2,
    "jpeg_p": 0.5,
}


def shopper_probabilities(chosen: Mapping[str, float | None], preset: bool) -> dict[str, float]:
    """The probability of each shopper-photo augmentation (the keys of SHOPPER_PRESET): the one
    ``chosen`` (None: not chosen), else the preset's when ``preset``, else 0."""
    unknown = set(chosen) - set(SHOPPER_PRESET)
    if unknown:
        raise ValueError(f"unknown shopper augmentations {sorted(unknown)}; known: {sorted(SHOPPER_PRESET)}")
    return {
        name: p if (p := chosen.get(name)) is not None else (default if preset else 0.0)
        for name, default in SHOPPER_PRESET.items()
    }


def view_transform(
    cfg: AugmentConfig,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    background_paths: Sequence[str | Path] = (),
) -> v2.Compose:
    """One random view: PIL image -> tensor (3, image_size, image_size).

    The shopper-photo augmentations join only when their probability is above 0, so with them
    off the pipeline (and its random draws) is SimCLR's. The background is replaced on the full
    photo (its border tells a packshot), from crops of ``background_paths``; the rest act on the
    cropped view, where they cost least: scene (perspective, tilt, hand, glare), then camera
    (colour cast, exposure, blur, shake), then the JPEG.
    """
    s = cfg.jitter_strength
    steps: list[Callable[[Any], Any]] = []
    if cfg.background_p > 0:
        if not background_paths:
            raise ValueError("background replacement needs background_paths (the training photos)")
        backgrounds = RandomPhotoCrop(background_paths)
        steps.append(BackgroundReplacement(backgrounds, cfg.background_p, cfg.background_scale))
    steps += [
        v2.RandomResizedCrop(cfg.image_size, scale=cfg.crop_scale, antialias=True),
        v2.RandomHorizontalFlip(),
    ]
    optional: list[tuple[float, Callable[[Image.Image], Image.Image]]] = [
        (cfg.perspective_p, RandomPerspectiveWarp(cfg.perspective_p, cfg.perspective_distortion)),
        (cfg.rotation_p, SmallRotation(cfg.rotation_p, cfg.rotation_degrees)),
        (cfg.occlusion_p, HandOcclusion(cfg.occlusion_p, cfg.occlusion_scale)),
        (cfg.glare_p, Glare(cfg.glare_p, cfg.glare_strength)),
    ]
    steps += [t for p, t in optional if p > 0]
    steps.append(v2.RandomApply([v2.ColorJitter(s, s, s, cfg.hue)], p=cfg.jitter_p))
    optional = [
        (cfg.white_balance_p, WhiteBalanceShift(cfg.white_balance_p, cfg.white_balance_shift)),
        (cfg.exposure_p, ExposureShift(cfg.exposure_p, cfg.exposure_stops)),
    ]
    steps += [t for p, t in optional if p > 0]
    steps += [
        v2.RandomGrayscale(p=cfg.grayscale_p),
        v2.RandomApply([RandomGaussianBlur((0.1, 2.0))], p=cfg.blur_p),
    ]
    optional = [
        (cfg.motion_blur_p, MotionBlur(cfg.motion_blur_p, cfg.motion_blur_length)),
        (cfg.jpeg_p, JpegRecompression(cfg.jpeg_p, cfg.jpeg_quality)),
    ]
    steps += [t for p, t in optional if p > 0]
    steps.append(to_normalised_tensor(mean, std))
    return v2.Compose(steps)


class TwoViews:
    """PIL image -> (view1, view2), two independent draws of the same random transform."""

    def __init__(self, transform: v2.Compose) -> None:
        self.transform = transform

    def __call__(self, image: Image.Image) -> tuple[torch.Tensor, torch.Tensor]:
        return self.transform(image), self.transform(image)
