"""The two-view training transform of SimCLR, built on the encoder's normalisation constants."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from PIL import Image, ImageFilter
from torchvision.transforms import v2

from encoder.transforms import to_normalised_tensor


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


def view_transform(cfg: AugmentConfig, mean: tuple[float, ...], std: tuple[float, ...]) -> v2.Compose:
    """One random view: PIL image -> tensor (3, image_size, image_size)."""
    s = cfg.jitter_strength
    return v2.Compose(
        [
            v2.RandomResizedCrop(cfg.image_size, scale=cfg.crop_scale, antialias=True),
            v2.RandomHorizontalFlip(),
            v2.RandomApply([v2.ColorJitter(s, s, s, cfg.hue)], p=cfg.jitter_p),
            v2.RandomGrayscale(p=cfg.grayscale_p),
            v2.RandomApply([RandomGaussianBlur((0.1, 2.0))], p=cfg.blur_p),
            to_normalised_tensor(mean, std),
        ]
    )


class TwoViews:
    """PIL image -> (view1, view2), two independent draws of the same random transform."""

    def __init__(self, transform: v2.Compose) -> None:
        self.transform = transform

    def __call__(self, image: Image.Image) -> tuple[torch.Tensor, torch.Tensor]:
        return self.transform(image), self.transform(image)
