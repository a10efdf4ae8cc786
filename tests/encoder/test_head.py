"""The retrieval head: GeM pooling, PCA whitening, flip and multi-scale averaging."""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from encoder import Encoder, EncoderConfig, encoder_fingerprint, load_encoder, save_encoder
from encoder.checkpoint import fingerprint_of
from encoder.pooling import GeM, feature_map
from encoder.whitening import Whitening


def test_gem_matches_its_formula_and_spans_average_to_max() -> None:
    x = torch.rand(2, 5, 3, 4) + 0.01  # (N, C, h, w), positive like post-ReLU features
    expected = torch.stack([torch.stack([(c**3).mean() ** (1 / 3) for c in image]) for image in x])
    torch.testing.assert_close(GeM(3.0)(x), expected)
    torch.testing.assert_close(GeM(1.0)(x), x.mean(dim=(2, 3)))
    assert torch.all(GeM(16.0)(x) <= x.amax(dim=(2, 3)) + 1e-6)
    assert torch.all(GeM(16.0)(x) > GeM(3.0)(x))
    with pytest.raises(ValueError, match="p must be >= 1"):
        GeM(0.5)


@pytest.mark.parametrize("arch", ["resnet18", "mobilenet_v3_small", "efficientnet_lite0"])
def test_average_pooled_feature_map_is_the_backbones_own_output(arch: str) -> None:
    encoder = Encoder(EncoderConfig(arch=arch, image_size=64)).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        fmap = feature_map(arch, encoder.backbone, x)  # (N, D, h, w)
        assert fmap.shape[:2] == (2, encoder.feature_dim)
        torch.testing.assert_close(fmap.mean(dim=(2, 3)), encoder.backbone(x), rtol=1e-4, atol=1e-6)


def test_whitening_decorrelates_its_training_data_with_no_shrinkage() -> None:
    torch.manual_seed(0)
    mixing = torch.randn(6, 6)
    data = torch.randn(500, 6) @ mixing + 3.0  # correlated, off-centre
    whitening = Whitening(6)
    whitening.fit(data, shrinkage=0.0)
    out = whitening(data).double()
    torch.testing.assert_close(out.mean(dim=0), torch.zeros(6, dtype=torch.float64), atol=1e-4, rtol=0)
    torch.testing.assert_close(torch.cov(out.T), torch.eye(6, dtype=torch.float64), atol=1e-3, rtol=0)


def test_full_shrinkage_only_centres_and_rotates_and_out_dim_keeps_the_strongest_axes() -> None:
    torch.manual_seed(0)
    data = torch.randn(400, 4) * torch.tensor([5.0, 1.0, 0.5, 0.1])
    whitening = Whitening(4, out_dim=2)
    whitening.fit(data, shrinkage=1.0)
    out = whitening(data)  # (N, 2)
    assert out.shape == (400, 2)
    # a rotation (scaled the same on every axis) keeps the strongest two axes: 5.0 and 1.0
    variances = out.var(dim=0)
    assert variances[0] / variances[1] == pytest.approx(25.0, rel=0.2)
    with pytest.raises(ValueError, match="shrinkage"):
        whitening.fit(data, shrinkage=1.5)


def test_whitening_round_trips_through_encoder_pt_and_changes_the_fingerprint(tmp_path: Path) -> None:
    torch.manual_seed(0)
    config = EncoderConfig(arch="mobilenet_v3_small", image_size=64, whiten=True, whiten_dim=32)
    encoder = Encoder(config)
    assert encoder.embed_dim == 32 and encoder.feature_dim == 576
    unfit = encoder_fingerprint(encoder)
    assert encoder.whitening is not None
    encoder.whitening.fit(torch.randn(100, 576), shrinkage=0.3)
    assert encoder_fingerprint(encoder) != unfit, "the whitening is covered by the fingerprint"
    save_encoder(encoder, tmp_path / "encoder.pt")
    loaded = load_encoder(tmp_path / "encoder.pt")
    assert loaded.config.whiten and loaded.embed_dim == 32
    x = torch.randn(3, 3, 64, 64)
    out = loaded.embed(x)
    torch.testing.assert_close(out, encoder.embed(x))
    torch.testing.assert_close(out.norm(dim=1), torch.ones(3))
    # by hand: the descriptor, whitened, normalised
    whitening = encoder.eval().whitening
    expected = F.normalize((encoder.descriptors(x) - whitening.mean) @ whitening.projection, dim=1)
    torch.testing.assert_close(out, expected)


def test_flip_and_scales_average_normalised_descriptors() -> None:
    torch.manual_seed(0)
    plain = Encoder(EncoderConfig(arch="resnet18", image_size=64)).eval()
    head = Encoder(EncoderConfig(arch="resnet18", image_size=64, flip=True, scales=(1.0, 0.5)))
    head.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 64, 64)
    small = F.interpolate(x, scale_factor=0.5, mode="bilinear", antialias=True)
    views = [x, x.flip(3), small, small.flip(3)]
    expected = F.normalize(sum(plain.embed(v) for v in views), dim=1)
    torch.testing.assert_close(head.embed(x), expected, rtol=1e-4, atol=1e-5)
    # a flip-averaged embedding does not change when the photo is mirrored
    torch.testing.assert_close(head.embed(x.flip(3)), head.embed(x), rtol=1e-4, atol=1e-5)


def test_an_encoder_saved_before_the_head_existed_keeps_its_fingerprint(tmp_path: Path) -> None:
    encoder = Encoder(EncoderConfig(arch="mobilenet_v3_small", image_size=64))
    state = encoder.state_dict()
    legacy_config = {"arch": "mobilenet_v3_small", "image_size": 64, "mean": [0.485, 0.456, 0.406],
                     "std": [0.229, 0.224, 0.225], "embed_dim": 576}
    legacy = fingerprint_of(EncoderConfig.from_dict(dict(legacy_config)), state)
    assert encoder.config.to_dict() == legacy_config
    assert encoder_fingerprint(encoder) == legacy
    gem = Encoder(EncoderConfig(arch="mobilenet_v3_small", image_size=64, pooling="gem"))
    assert fingerprint_of(gem.config, state) != legacy, "a head option is part of the fingerprint"


def test_head_options_are_checked() -> None:
    with pytest.raises(ValueError, match="avg, gem"):
        EncoderConfig(pooling="max")
    with pytest.raises(ValueError, match="scales"):
        EncoderConfig(scales=(10.0,))
    with pytest.raises(ValueError, match="whiten"):
        EncoderConfig(whiten_dim=64)
