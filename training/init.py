"""Initialising an encoder before self-supervised training (and for the evaluation baselines)."""

from __future__ import annotations

from typing import Any

import torch

from encoder import Encoder, EncoderConfig, load_imagenet_weights


def build_encoder(arch: str, init: str, embed_image_size: int, head: dict[str, Any] | None = None) -> Encoder:
    """A fresh encoder, initialised randomly, from the shipped ImageNet weights, or a local file.

    ``head``: retrieval-head fields of ``EncoderConfig`` (pooling, gem_p, flip, scales, whiten,
    whiten_dim); an unfit whitening is the identity until ``Whitening.fit``.
    """
    encoder = Encoder(EncoderConfig(arch=arch, image_size=embed_image_size, **(head or {})))
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
