"""Global pooling of a backbone's feature map into one descriptor per image."""

from __future__ import annotations

from typing import Any, cast

import torch
from torch import nn

POOLINGS = ("avg", "gem")


class GeM(nn.Module):
    """Generalised-mean pooling (Radenović, Tolias and Chum, "Fine-tuning CNN Image Retrieval with
    No Human Annotation", TPAMI 2018): ``(mean over h, w of x^p)^(1/p)`` per channel.

    p = 1 is average pooling, p -> infinity max pooling; p = 3 is the paper's default. ``p`` is
    fixed here (a config value, not a learned parameter), so it is part of the fingerprint.

    Shapes: x (N, C, h, w), non-negative (post-ReLU) -> (N, C).
    """

    def __init__(self, p: float = 3.0, eps: float = 1e-6) -> None:
        super().__init__()
        if p < 1:
            raise ValueError(f"GeM p must be >= 1 (1 = average pooling), got {p}")
        self.p, self.eps = float(p), eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = x.float().clamp(min=self.eps).pow(self.p).mean(dim=(2, 3))  # (N, C)
        return pooled.pow(1.0 / self.p).to(x.dtype)


def feature_map(arch: str, backbone: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The last convolutional feature map of ``backbone`` (as built by ``build_backbone(arch)``),
    before its global average pooling: images (N, 3, H, W) -> (N, D, h, w)."""
    net = cast(Any, backbone)  # arch-specific attributes below
    if arch == "efficientnet_lite0":
        return cast(torch.Tensor, net.net.extract_features(images))
    if arch.startswith("resnet"):
        x = net.maxpool(net.relu(net.bn1(net.conv1(images))))
        return cast(torch.Tensor, net.layer4(net.layer3(net.layer2(net.layer1(x)))))
    return cast(torch.Tensor, net.features(images))  # mobilenet_v3_*, efficientnet_b0
