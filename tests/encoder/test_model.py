import pytest
import torch

from encoder import Encoder, EncoderConfig, normalization_for
from encoder.backbones import BACKBONES
from encoder.transforms import HALF_MEAN, IMAGENET_MEAN


@pytest.mark.parametrize("arch", sorted(BACKBONES))
def test_every_arch_embeds_unit_vectors(arch: str) -> None:
    encoder = Encoder(EncoderConfig(arch=arch, image_size=64))
    out = encoder.embed(torch.randn(3, 3, 64, 64))
    assert out.shape == (3, encoder.embed_dim)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.norm(dim=1), torch.ones(3))
    assert encoder.training, "embed() must restore the previous mode"


def test_embedding_dims_come_from_the_backbone() -> None:
    dims = {a: Encoder(EncoderConfig(arch=a)).embed_dim for a in ("resnet18", "efficientnet_lite0")}
    assert dims == {"resnet18": 512, "efficientnet_lite0": 1280}


def test_lite0_uses_half_normalisation_and_torchvision_imagenet() -> None:
    assert normalization_for("efficientnet_lite0")[0] == HALF_MEAN
    assert EncoderConfig(arch="efficientnet_lite0").mean == HALF_MEAN
    assert EncoderConfig(arch="resnet50").mean == IMAGENET_MEAN


def test_config_errors_name_the_choices() -> None:
    with pytest.raises(ValueError, match="resnet18"):
        EncoderConfig(arch="vgg11")
    with pytest.raises(ValueError, match="image_size"):
        EncoderConfig(image_size=8)
    with pytest.raises(ValueError, match="unknown encoder config keys"):
        EncoderConfig.from_dict({"arch": "resnet18", "depth": 3})


def test_lite0_accepts_any_input_size() -> None:
    encoder = Encoder(EncoderConfig(arch="efficientnet_lite0"))
    for size in (97, 160, 224):
        assert encoder.embed(torch.randn(1, 3, size, size)).shape == (1, 1280)
