"""Initialising an encoder before self-supervised training (and for the evaluation baselines)."""

from __future__ import annotations

import torch

from encoder import Encoder, EncoderConfig, load_imagenet_weights


def build_encoder(arch: str, init: str, embed_image_size: int) -> Encoder:
    """A fresh encoder, initialised randomly, from the shipped ImageNet weights, or a local file."""
    encoder = Encoder(EncoderConfig(arch=arch, image_size=embed_image_size))
    if init == "imagenet":
        load_imagenet_weights(arch, encoder.backbone)
    elif init != "random":
        state = torch.load(init, map_location="cpu", weights_only=True)
        result = encoder.backbone.load_state_dict(state, strict=False)
        if result.missing_keys or result.unexpected_keys:
            raise ValueError(
                f"--init {init} does not fit {arch}: missing keys {result.missing_keys[:10]}, "
                f"unexpected keys {result.unexpected_keys[:10]}"
            )
    return encoder
