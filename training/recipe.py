"""The default fine-tuning recipe: what ``lookalike train --data photos/`` does with no other flag.

Each default was measured on the instance-level task (smvs-dvd split by product) and checked
on clothing-small; docs/QUALITY.md has the tables and the command behind every figure. Flags
left at ``None`` by the command line are filled in here, once the photos are counted.
"""

from __future__ import annotations

import argparse
import math

PRETRAINED_FREEZE_SHARE = 0.625  # the stem and the first 10 of EfficientNet-Lite0's 16 blocks
IMAGES_PER_RUN = 3000  # photos seen by a default run: 10 epochs of 300 (3,000 and more: MIN_EPOCHS)
MIN_EPOCHS, MAX_EPOCHS = 2, 50
EMBED_IMAGE_SIZE = 224  # the exported encoder embeds at the size its ImageNet weights know


def default_epochs(n_images: int, images_per_run: int = IMAGES_PER_RUN) -> int:
    """Enough epochs to see about ``images_per_run`` photos: a small catalog gets more passes,
    a large one at least ``MIN_EPOCHS``, so training time grows only past ~3,000 photos."""
    return max(MIN_EPOCHS, min(MAX_EPOCHS, math.ceil(images_per_run / max(1, n_images))))


def default_freeze_blocks(init: str, n_blocks: int) -> int:
    """Blocks to freeze: the early ``PRETRAINED_FREEZE_SHARE`` of a pretrained backbone (generic
    edges and textures, and the CPU saves their backward pass), none of a random one."""
    return round(PRETRAINED_FREEZE_SHARE * n_blocks) if init != "random" else 0


def fill_defaults(args: argparse.Namespace) -> None:
    """Fill the recipe flags left at None that the start decides: ``bn_eval`` (keep pretrained
    BatchNorm statistics) and ``embed_image_size``. ``freeze_blocks`` waits for the backbone
    (``default_freeze_blocks``), ``epochs`` for the photo count (``default_epochs``)."""
    pretrained = args.init != "random"
    if args.bn_eval is None:
        args.bn_eval = pretrained
    if args.embed_image_size is None:
        args.embed_image_size = max(args.image_size, EMBED_IMAGE_SIZE) if pretrained else args.image_size
