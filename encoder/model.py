"""The image encoder: a backbone that maps product photos to L2-normalised embeddings."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from encoder.backbones import BACKBONES, build_backbone
from encoder.transforms import normalization_for


@dataclass
class EncoderConfig:
    """Everything needed to rebuild an encoder; saved inside every ``encoder.pt``.

    ``mean``/``std`` default to the normalisation the arch's weights were trained with
    (0.5/0.5 for efficientnet_lite0, ImageNet's for torchvision models); ``embed_dim`` is
    filled in from the backbone.
    """

    arch: str = "efficientnet_lite0"
    image_size: int = 224
    mean: tuple[float, ...] = field(default=())
    std: tuple[float, ...] = field(default=())
    embed_dim: int = 0

    def __post_init__(self) -> None:
        if self.arch not in BACKBONES:
            raise ValueError(f"unknown arch {self.arch!r}; choose one of: {', '.join(sorted(BACKBONES))}")
        if not 32 <= self.image_size <= 1024:
            raise ValueError(f"image_size must be in 32..1024, got {self.image_size}")
        default_mean, default_std = normalization_for(self.arch)
        self.mean = tuple(float(v) for v in (self.mean or default_mean))
        self.std = tuple(float(v) for v in (self.std or default_std))
        if len(self.mean) != 3 or len(self.std) != 3:
            raise ValueError("mean and std need one value per RGB channel")

    def to_dict(self) -> dict[str, Any]:
        """A JSON- and ``torch.load(weights_only=True)``-safe dict."""
        out = asdict(self)
        out["mean"], out["std"] = list(self.mean), list(self.std)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EncoderConfig:
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown encoder config keys {sorted(unknown)}; known: {sorted(known)}")
        return cls(**data)


class Encoder(nn.Module):
    """Backbone + global pooling; ``embed`` returns unit-length float32 vectors (N, D)."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        backbone, dim = build_backbone(config.arch)
        if config.embed_dim and config.embed_dim != dim:
            raise ValueError(f"{config.arch} produces {dim}-d features, config says {config.embed_dim}")
        config.embed_dim = dim
        self.config = config
        self.backbone = backbone

    @property
    def embed_dim(self) -> int:
        return self.config.embed_dim

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images: (N, 3, H, W) normalised -> raw features (N, D), with gradients."""
        return self.backbone(images)

    @torch.inference_mode()
    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """images: (N, 3, H, W) normalised -> (N, D) float32, L2-normalised, no gradients.

        Runs in eval mode (BatchNorm uses its running statistics) and restores the previous
        mode afterwards.
        """
        was_training = self.training
        self.eval()
        try:
            device = next(self.parameters()).device
            features = self.backbone(images.to(device, non_blocking=True))  # (N, D)
            # tiny eps: a randomly initialised deep net can emit features of norm ~1e-13
            return F.normalize(features.float(), dim=1, eps=torch.finfo(torch.float32).tiny)
        finally:
            self.train(was_training)
