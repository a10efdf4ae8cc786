from pathlib import Path

import pytest
import torch

from encoder import (
    Encoder,
    EncoderConfig,
    encoder_fingerprint,
    imagenet_state_dict,
    load_encoder,
    load_imagenet_weights,
    save_encoder,
)


def test_roundtrip_gives_the_same_embeddings_and_fingerprint(tmp_path: Path) -> None:
    torch.manual_seed(1)
    encoder = Encoder(EncoderConfig(arch="resnet18", image_size=64))
    fingerprint = save_encoder(encoder, tmp_path / "e.pt")
    loaded = load_encoder(tmp_path / "e.pt")
    x = torch.randn(2, 3, 64, 64)
    torch.testing.assert_close(loaded.embed(x), encoder.embed(x))
    assert encoder_fingerprint(loaded) == fingerprint
    assert loaded.config == encoder.config


def test_fingerprint_changes_with_any_weight(tmp_path: Path) -> None:
    encoder = Encoder(EncoderConfig(arch="mobilenet_v3_small", image_size=64))
    before = encoder_fingerprint(encoder)
    with torch.no_grad():
        next(encoder.parameters()).view(-1)[0] += 1e-3
    assert encoder_fingerprint(encoder) != before


def test_a_tampered_file_is_refused(tmp_path: Path) -> None:
    encoder = Encoder(EncoderConfig(arch="mobilenet_v3_small", image_size=64))
    save_encoder(encoder, tmp_path / "e.pt")
    payload = torch.load(tmp_path / "e.pt", weights_only=True)
    name = next(iter(payload["state_dict"]))
    payload["state_dict"][name] = payload["state_dict"][name] + 1
    torch.save(payload, tmp_path / "tampered.pt")
    with pytest.raises(ValueError, match="fingerprint"):
        load_encoder(tmp_path / "tampered.pt")


def test_loading_is_strict_about_keys(tmp_path: Path) -> None:
    encoder = Encoder(EncoderConfig(arch="mobilenet_v3_small", image_size=64))
    save_encoder(encoder, tmp_path / "e.pt")
    payload = torch.load(tmp_path / "e.pt", weights_only=True)
    payload["config"].update(arch="resnet18", embed_dim=0)  # weights of one arch, config of another
    from encoder.checkpoint import fingerprint_of

    payload["fingerprint"] = fingerprint_of(EncoderConfig.from_dict(payload["config"]), payload["state_dict"])
    torch.save(payload, tmp_path / "wrong.pt")
    with pytest.raises(RuntimeError, match="Missing key"):
        load_encoder(tmp_path / "wrong.pt")


def test_not_a_checkpoint(tmp_path: Path) -> None:
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable encoder checkpoint"):
        load_encoder(tmp_path / "junk.pt")
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="lookalike train"):
        load_encoder(tmp_path / "other.pt")


def test_shipped_imagenet_weights_load_strictly_and_change_the_model() -> None:
    torch.manual_seed(0)
    encoder = Encoder(EncoderConfig(arch="efficientnet_lite0"))
    random_out = encoder.embed(torch.ones(1, 3, 64, 64) * 0.3)
    load_imagenet_weights("efficientnet_lite0", encoder.backbone)
    state = imagenet_state_dict("efficientnet_lite0")
    torch.testing.assert_close(
        encoder.backbone.state_dict()["net._conv_stem.weight"], state["net._conv_stem.weight"]
    )
    assert not torch.allclose(encoder.embed(torch.ones(1, 3, 64, 64) * 0.3), random_out)
    with pytest.raises(ValueError, match="efficientnet_lite0"):
        imagenet_state_dict("resnet50")
