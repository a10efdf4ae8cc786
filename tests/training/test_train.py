from pathlib import Path

import pytest
import torch

from encoder import Encoder, EncoderConfig, load_encoder
from training.freeze import backbone_blocks, freeze_blocks, set_batchnorm_eval
from training.train import build_encoder, get_args_parser, main


def test_one_epoch_exports_a_loadable_backbone_only(photo_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "encoder.pt"
    args = get_args_parser().parse_args(
        [
            "--data",
            str(photo_folder),
            "--arch",
            "mobilenet_v3_small",
            "--image-size",
            "64",
            "--epochs",
            "1",
            "--batch-size",
            "6",
            "--workers",
            "0",
            "--out",
            str(out),
            "--no-progress",
            "--proj-hidden-dim",
            "64",
            "--proj-dim",
            "16",
        ]
    )
    main(args)
    payload = torch.load(out, weights_only=True)
    assert all(k.startswith("backbone.") for k in payload["state_dict"]), (
        "the projection head must be dropped"
    )
    encoder = load_encoder(out)
    assert encoder.config.arch == "mobilenet_v3_small" and encoder.config.image_size == 64
    torch.manual_seed(0)
    start = build_encoder("mobilenet_v3_small", "random", 64)
    changed = any(
        not torch.equal(a, b)
        for a, b in zip(start.state_dict().values(), encoder.state_dict().values(), strict=True)
    )
    assert changed, "training must update the weights"


def test_freeze_blocks_and_batchnorm_eval() -> None:
    encoder = Encoder(EncoderConfig(arch="efficientnet_lite0"))
    stem, blocks = backbone_blocks(encoder)
    assert len(blocks) == 16
    total = sum(p.numel() for p in encoder.parameters())
    trainable = freeze_blocks(encoder, 10)
    assert 0 < trainable < total
    assert not any(p.requires_grad for p in stem.parameters())
    assert not any(p.requires_grad for b in blocks[:10] for p in b.parameters())
    assert all(p.requires_grad for b in blocks[10:] for p in b.parameters())
    with pytest.raises(ValueError, match="0..16"):
        freeze_blocks(encoder, 17)

    encoder.train()
    set_batchnorm_eval(encoder)
    bn = encoder.backbone.net._bn0
    before = bn.running_mean.clone()
    encoder(torch.randn(4, 3, 64, 64) * 5 + 3)
    torch.testing.assert_close(bn.running_mean, before)


def test_init_from_a_local_state_dict(tmp_path: Path) -> None:
    source = Encoder(EncoderConfig(arch="resnet18", image_size=64))
    torch.save(source.backbone.state_dict(), tmp_path / "backbone.pt")
    loaded = build_encoder("resnet18", str(tmp_path / "backbone.pt"), 64)
    torch.testing.assert_close(loaded.backbone.conv1.weight, source.backbone.conv1.weight)
    with pytest.raises(ValueError, match="missing keys"):
        build_encoder("mobilenet_v3_small", str(tmp_path / "backbone.pt"), 64)
