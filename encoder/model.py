"""The image encoder: a backbone that maps product photos to L2-normalised embeddings."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from encoder.backbones import BACKBONES, build_backbone
from encoder.pooling import POOLINGS, GeM, feature_map
from encoder.transforms import normalization_for
from encoder.whitening import Whitening

# The retrieval head's settings at which an encoder behaves as one saved before they existed.
# ``to_dict`` leaves these out, so an older encoder.pt keeps its fingerprint (and its stores).
_HEAD_DEFAULTS: dict[str, Any] = {
    "pooling": "avg",
    "gem_p": 3.0,
    "flip": False,
    "scales": [1.0],
    "whiten": False,
    "whiten_dim": 0,
}


@dataclass
class EncoderConfig:
    """Everything needed to rebuild an encoder; saved inside every ``encoder.pt``.

    ``mean``/``std`` default to the normalisation the arch's weights were trained with
    (0.5/0.5 for efficientnet_lite0, ImageNet's for torchvision models); ``embed_dim`` (the
    size of the vectors ``embed`` returns) is filled in from the backbone and the whitening.

    The retrieval head: ``pooling`` of the feature map ("avg", or "gem" with exponent
    ``gem_p``); ``flip`` averages the descriptors of the photo and its mirror image; ``scales``
    averages descriptors of the input resized by each factor; ``whiten`` applies the PCA
    whitening stored in the checkpoint, keeping ``whiten_dim`` dimensions (0: all).
    """

    arch: str = "efficientnet_lite0"
    image_size: int = 224
    mean: tuple[float, ...] = field(default=())
    std: tuple[float, ...] = field(default=())
    embed_dim: int = 0
    pooling: str = "avg"
    gem_p: float = 3.0
    flip: bool = False
    scales: tuple[float, ...] = (1.0,)
    whiten: bool = False
    whiten_dim: int = 0

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
        if self.pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {self.pooling!r}; choose one of: {', '.join(POOLINGS)}")
        if not 1.0 <= self.gem_p <= 16.0:
            raise ValueError(f"gem_p must be in 1..16, got {self.gem_p}")
        self.gem_p = float(self.gem_p)
        self.scales = tuple(float(s) for s in self.scales)
        if not self.scales or any(not 0.25 <= s <= 4.0 for s in self.scales):
            raise ValueError(f"scales must be one or more factors in 0.25..4, got {self.scales}")
        if self.whiten_dim < 0 or (self.whiten_dim and not self.whiten):
            raise ValueError("whiten_dim must be >= 0 and needs whiten=True")

    def to_dict(self) -> dict[str, Any]:
        """A JSON- and ``torch.load(weights_only=True)``-safe dict; head settings left at the
        behaviour of older encoders are omitted (see ``_HEAD_DEFAULTS``)."""
        out = asdict(self)
        out["mean"], out["std"], out["scales"] = list(self.mean), list(self.std), list(self.scales)
        return {k: v for k, v in out.items() if k not in _HEAD_DEFAULTS or v != _HEAD_DEFAULTS[k]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EncoderConfig:
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown encoder config keys {sorted(unknown)}; known: {sorted(known)}")
        return cls(**data)


class Encoder(nn.Module):
    """Backbone + global pooling (+ the retrieval head at embedding time); ``embed`` returns
    unit-length float32 vectors (N, embed_dim)."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        backbone, dim = build_backbone(config.arch)
        self.feature_dim = dim
        self.whitening = Whitening(dim, config.whiten_dim) if config.whiten else None
        out_dim = self.whitening.out_dim if self.whitening is not None else dim
        if config.embed_dim and config.embed_dim != out_dim:
            raise ValueError(f"{config.arch} produces {out_dim}-d embeddings, config says {config.embed_dim}")
        config.embed_dim = out_dim
        self.config = config
        self.backbone = backbone
        self.gem = GeM(config.gem_p) if config.pooling == "gem" else None

    @property
    def embed_dim(self) -> int:
        return self.config.embed_dim

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images: (N, 3, H, W) normalised -> pooled features (N, feature_dim), with gradients.

        What training optimises; the flip, scales and whitening of the head apply in ``embed``.
        """
        if self.gem is None:
            return self.backbone(images)
        return self.gem(feature_map(self.config.arch, self.backbone, images))

    def descriptors(self, images: torch.Tensor) -> torch.Tensor:
        """images: (N, 3, H, W) -> (N, feature_dim) unit vectors, before whitening: the mean of
        the L2-normalised pooled features over every scale (and its mirror image with ``flip``),
        normalised again. One scale without flip: the normalised pooled features."""
        eps = torch.finfo(torch.float32).tiny  # a random deep net can emit features of norm ~1e-13
        total: torch.Tensor | None = None
        for scale in self.config.scales:
            x = images
            if scale != 1.0:
                x = F.interpolate(images, scale_factor=scale, mode="bilinear", antialias=True)
            if self.config.flip:
                x = torch.cat([x, x.flip(3)])  # one forward for both: (2N, 3, h, w)
            features = F.normalize(self(x).float(), dim=1, eps=eps)
            if self.config.flip:
                n = images.shape[0]
                features = features[:n] + features[n:]
            total = features if total is None else total + features
        assert total is not None
        return F.normalize(total, dim=1, eps=eps)

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
            vectors = self.descriptors(images.to(device, non_blocking=True))  # (N, feature_dim)
            if self.whitening is not None:
                vectors = F.normalize(self.whitening(vectors), dim=1, eps=torch.finfo(torch.float32).tiny)
            return vectors  # (N, embed_dim)
        finally:
            self.train(was_training)
