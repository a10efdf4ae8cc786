"""Freezing the early layers of a pretrained backbone, so a CPU can fine-tune the rest."""

from __future__ import annotations

from typing import Any, cast

from torch import nn

from encoder import Encoder


def backbone_blocks(encoder: Encoder) -> tuple[nn.Module, list[nn.Module]]:
    """(stem, [block 1, block 2, ...]) of the backbone, blocks ordered from input to output."""
    arch, net = encoder.config.arch, cast(Any, encoder.backbone)  # arch-specific attributes below
    if arch == "efficientnet_lite0":
        lite = net.net
        return nn.ModuleList([lite._conv_stem, lite._bn0]), list(lite._blocks)
    if arch.startswith("resnet"):
        blocks = [b for layer in (net.layer1, net.layer2, net.layer3, net.layer4) for b in layer]
        return nn.ModuleList([net.conv1, net.bn1]), blocks
    # mobilenet_v3_* and efficientnet_b0: features = [stem, blocks or stages of blocks..., last conv]
    features = list(net.features)
    stage_blocks: list[nn.Module] = []
    for stage in features[1:-1]:
        stage_blocks.extend(stage if isinstance(stage, nn.Sequential) else [stage])
    return features[0], stage_blocks


def freeze_blocks(encoder: Encoder, n_blocks: int) -> int:
    """Freeze the stem and the first ``n_blocks`` blocks; return how many parameters stay trainable."""
    stem, blocks = backbone_blocks(encoder)
    if not 0 <= n_blocks <= len(blocks):
        raise ValueError(
            f"{encoder.config.arch} has {len(blocks)} blocks; --freeze-blocks must be 0..{len(blocks)}"
        )
    if n_blocks > 0:
        for module in [stem, *blocks[:n_blocks]]:
            for p in module.parameters():
                p.requires_grad_(False)
    return sum(p.numel() for p in encoder.parameters() if p.requires_grad)


def set_batchnorm_eval(module: nn.Module) -> None:
    """Put every BatchNorm of ``module`` in eval mode: keep the pretrained running statistics."""
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()
