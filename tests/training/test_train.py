import json
from pathlib import Path

import pytest
import torch

from encoder import Encoder, EncoderConfig, load_encoder
from training.freeze import backbone_blocks, freeze_blocks, set_batchnorm_eval
from training.init import build_encoder
from training.train import get_args_parser, main

TINY = [
    "--init",
    "random",
    "--arch",
    "mobilenet_v3_small",
    "--image-size",
    "64",
    "--batch-size",
    "6",
    "--workers",
    "0",
    "--no-progress",
    "--proj-hidden-dim",
    "64",
    "--proj-dim",
    "16",
]


def train(photo_folder: Path, out: Path, *extra: str) -> Encoder:
    main(get_args_parser().parse_args(["--data", str(photo_folder), "--out", str(out), *TINY, *extra]))
    return load_encoder(out)


@pytest.mark.parametrize("method", ["simclr", "moco", "byol"])
def test_each_method_exports_a_trained_backbone_only(photo_folder: Path, tmp_path: Path, method: str) -> None:
    out = tmp_path / "encoder.pt"
    encoder = train(photo_folder, out, "--method", method, "--epochs", "1", "--moco-queue", "32")
    payload = torch.load(out, weights_only=True)
    assert all(k.startswith("backbone.") for k in payload["state_dict"]), (
        "heads and momentum nets are dropped"
    )
    assert encoder.config.arch == "mobilenet_v3_small" and encoder.config.image_size == 64
    torch.manual_seed(0)
    start = build_encoder("mobilenet_v3_small", "random", 64)
    assert any(
        not torch.equal(a, b)
        for a, b in zip(start.state_dict().values(), encoder.state_dict().values(), strict=True)
    ), "training must update the weights"


@pytest.mark.parametrize("method", ["simclr", "moco", "byol"])
def test_resume_continues_exactly(photo_folder: Path, tmp_path: Path, method: str, monkeypatch) -> None:
    """2 epochs straight == 1 epoch, a stop, --resume, 1 more epoch (deterministic mode, CPU)."""
    common = ["--method", method, "--moco-queue", "32", "--deterministic", "--epochs", "2"]
    straight = train(photo_folder, tmp_path / "straight.pt", *common)

    import training.train as train_module

    original, calls = train_module.train_one_epoch, []

    def stop_after_one_epoch(*args, **kwargs):
        if calls:
            raise KeyboardInterrupt("stopped after one epoch")
        calls.append(1)
        return original(*args, **kwargs)

    run = tmp_path / "run"
    monkeypatch.setattr(train_module, "train_one_epoch", stop_after_one_epoch)
    with pytest.raises(KeyboardInterrupt):
        train(photo_folder, tmp_path / "unused.pt", *common, "--output-dir", str(run))
    monkeypatch.setattr(train_module, "train_one_epoch", original)
    assert (run / "checkpoint.pt").exists() and not (tmp_path / "unused.pt").exists()

    resumed = train(photo_folder, tmp_path / "resumed.pt", *common, "--output-dir", str(run), "--resume")
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, msg=f"{name} differs after resume")
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2] and all("loss" in r and "images_per_s" in r for r in log)


def test_knn_monitor_is_logged(photo_folder: Path, tmp_path: Path) -> None:
    train(
        photo_folder,
        tmp_path / "e.pt",
        "--epochs",
        "1",
        "--val",
        str(photo_folder),
        "--knn-k",
        "3",
        "--output-dir",
        str(tmp_path / "run"),
    )
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert log[0]["epoch"] == 0 and 0.0 <= log[0]["knn_top1"] <= 1.0  # before training: the guard's baseline
    assert 0.0 <= log[-1]["knn_top1"] <= 1.0


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
