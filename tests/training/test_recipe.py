"""The default recipe: what `lookalike train --data photos/` does with no other flag."""

from pathlib import Path

import torch

from encoder import load_encoder
from training.init import build_encoder
from training.recipe import IMAGES_PER_RUN, MAX_EPOCHS, MIN_EPOCHS, default_epochs, default_freeze_blocks
from training.train import get_args_parser, main


def test_the_plain_command_fine_tunes_the_pretrained_encoder() -> None:
    args = get_args_parser().parse_args(["--data", "photos/"])
    assert args.init == "imagenet" and args.arch == "efficientnet_lite0"
    assert args.image_size == 160
    assert args.freeze_blocks is None and args.bn_eval is None and args.epochs is None  # decided in main


def test_default_epochs_see_a_fixed_number_of_photos_within_bounds() -> None:
    assert default_epochs(3000) == MIN_EPOCHS
    assert default_epochs(300) == IMAGES_PER_RUN // 300
    assert default_epochs(40_000) == MIN_EPOCHS
    assert default_epochs(3) == MAX_EPOCHS


def test_freezing_follows_the_start() -> None:
    assert default_freeze_blocks("imagenet", 16) == 10
    assert default_freeze_blocks("imagenet", 8) == 5
    assert default_freeze_blocks("random", 16) == 0


def test_the_defaults_reach_the_exported_encoder(photo_folder: Path, tmp_path: Path, capsys) -> None:
    """ImageNet start, 10 of 16 blocks frozen, BatchNorm statistics kept, embedding at 224 px."""
    out = tmp_path / "encoder.pt"
    argv = ["--data", str(photo_folder), "--out", str(out), "--epochs", "1", "--batch-size", "6"]
    main(get_args_parser().parse_args([*argv, "--workers", "0", "--no-progress", "--image-size", "64"]))
    printed = capsys.readouterr().out
    assert "imagenet init, 10 blocks frozen, BatchNorm statistics kept" in printed
    encoder = load_encoder(out)
    assert encoder.config.arch == "efficientnet_lite0" and encoder.config.image_size == 224
    start = build_encoder("efficientnet_lite0", "imagenet", 224)
    trained, pretrained = encoder.state_dict(), start.state_dict()
    stem = "backbone.net._conv_stem.weight"
    assert torch.equal(trained[stem], pretrained[stem]), "the stem stays frozen"
    bn_mean = "backbone.net._blocks.15._bn2.running_mean"
    assert torch.equal(trained[bn_mean], pretrained[bn_mean]), "BatchNorm statistics are kept"
    last = "backbone.net._blocks.15._project_conv.weight"
    assert not torch.equal(trained[last], pretrained[last]), "the late blocks are fine-tuned"
