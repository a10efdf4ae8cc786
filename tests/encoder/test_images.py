import io
import struct
import zlib

import pytest
from PIL import Image

from encoder import (
    MAX_ASPECT,
    MIN_SIDE,
    Crop,
    ImageDecodeError,
    Preprocessor,
    decode_image,
    eval_transform,
    sniff_format,
)
from encoder.model import EncoderConfig
from tests.conftest import image_bytes, make_image


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF", "BMP"])
def test_accepted_formats_decode_to_rgb(fmt: str) -> None:
    image = decode_image(image_bytes(1, fmt))
    assert image.mode == "RGB" and image.size == (96, 128)


def test_content_is_sniffed_not_trusted() -> None:
    assert sniff_format(image_bytes(1, "PNG")) == "png"
    assert sniff_format(b"GIF89a...") == "gif"
    with pytest.raises(ImageDecodeError) as err:
        decode_image(b"hello, I am a text file named photo.jpg")
    assert err.value.kind == "unsupported"


def test_empty_and_truncated_images_are_corrupt() -> None:
    with pytest.raises(ImageDecodeError) as err:
        decode_image(b"")
    assert err.value.kind == "corrupt"
    data = image_bytes(2, "JPEG")
    with pytest.raises(ImageDecodeError) as err:
        decode_image(data[: len(data) // 2])
    assert err.value.kind == "corrupt"


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height, with one tiny compressed row: a decompression bomb."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return (
            struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 10))
        + chunk(b"IEND", b"")
    )


def test_pixel_limit_is_checked_before_decoding() -> None:
    with pytest.raises(ImageDecodeError) as err:
        decode_image(_png_header_only(50_000, 50_000), max_pixels=40_000_000)
    assert err.value.kind == "too_large"
    with pytest.raises(ImageDecodeError) as err:
        decode_image(image_bytes(3), max_pixels=100)
    assert err.value.kind == "too_large"


def test_exif_orientation_is_applied() -> None:
    image = make_image(4, (120, 60))  # landscape pixels...
    exif = Image.Exif()
    exif[0x0112] = 6  # ...shown rotated 90 degrees: portrait
    buf = io.BytesIO()
    image.save(buf, format="JPEG", exif=exif)
    assert decode_image(buf.getvalue()).size == (60, 120)


def test_preprocessor_gives_model_input_and_drafts_big_jpegs() -> None:
    cfg = EncoderConfig(arch="resnet18", image_size=64)
    pixels = Preprocessor(cfg)(image_bytes(5, "JPEG", size=(1200, 1600)))
    assert pixels.shape == (3, 64, 64)
    drafted = decode_image(image_bytes(5, "JPEG", size=(1200, 1600)), draft_size=128)
    assert 128 <= min(drafted.size) < 1200


def one_bit_png(width: int, height: int) -> bytes:
    """A 1-bit PNG of one colour: tens of bytes for any size (the cheap request that cost 4 GB)."""
    buf = io.BytesIO()
    Image.new("1", (width, height)).save(buf, "PNG")
    return buf.getvalue()


def big_jpeg(side: int = 4000) -> bytes:
    """A smooth ``side`` x ``side`` JPEG: 16 megapixels in a few hundred kilobytes."""
    buf = io.BytesIO()
    Image.linear_gradient("L").resize((side, side)).convert("RGB").save(buf, "JPEG", quality=60)
    return buf.getvalue()


@pytest.mark.parametrize("size", [(20_000, 1), (1, 20_000), (2_000, 99), (8, 8), (15, 300)])
def test_extreme_shapes_are_refused_with_a_plain_message(size: tuple[int, int]) -> None:
    with pytest.raises(ImageDecodeError) as err:
        decode_image(one_bit_png(*size))
    assert err.value.kind == "shape"
    assert f"{size[0]}x{size[1]}" in str(err.value)


def test_shapes_within_the_bounds_decode() -> None:
    assert decode_image(one_bit_png(MIN_SIDE, int(MIN_SIDE * MAX_ASPECT))).size == (16, 320)
    assert decode_image(one_bit_png(2000, 100)).size == (2000, 100)


def test_the_shape_is_checked_before_decoding() -> None:
    # only a header and a token of pixel data: decoding it would fail as corrupt, not as a shape
    with pytest.raises(ImageDecodeError) as err:
        decode_image(_png_header_only(640_000, 1))
    assert err.value.kind == "shape"
    cut = big_jpeg()[:5000]
    with pytest.raises(ImageDecodeError) as err:
        decode_image(cut, crop=Crop(0, 0, 0.0001, 1))
    assert err.value.kind == "crop"
    with pytest.raises(ImageDecodeError) as err:
        decode_image(cut)
    assert err.value.kind == "corrupt"


@pytest.mark.parametrize(
    "crop", [Crop(0, 0, 0.0001, 1), Crop(0, 0, 1, 0.0001), Crop(0.5, 0.5, 0.001, 0.001), Crop(0, 0, 0.04, 1)]
)
def test_thin_or_tiny_crops_are_refused(crop: Crop) -> None:
    with pytest.raises(ImageDecodeError) as err:
        Preprocessor(EncoderConfig(arch="resnet18", image_size=64))(big_jpeg(), crop)
    assert err.value.kind == "crop" and "crop" in str(err.value)


def test_a_crop_is_measured_in_the_upright_photo() -> None:
    image = make_image(4, (2000, 100))  # 20:1 pixels shown rotated: 100 wide, 2000 tall
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    image.save(buf, format="JPEG", exif=exif)
    upright = Crop(0, 0, 1, 0.5)  # 100 x 1000: 10:1, fine; in the stored pixels it would be 40:1
    assert decode_image(buf.getvalue(), crop=upright).size == (100, 1000)
    with pytest.raises(ImageDecodeError) as err:
        decode_image(buf.getvalue(), crop=Crop(0, 0, 0.1, 1))  # 10 x 2000 upright; 200 x 100 stored
    assert err.value.kind == "crop"


def test_a_crop_keeps_the_pixels_the_model_needs() -> None:
    region = decode_image(big_jpeg(), draft_size=128, crop=Crop(0.25, 0.25, 0.1, 0.5))
    assert min(region.size) >= 128 and region.size[0] < 400  # drafted, yet fine enough


def test_the_model_transform_bounds_the_longer_side() -> None:
    cfg = EncoderConfig(arch="resnet18", image_size=64)
    transform = eval_transform(cfg.image_size, cfg.mean, cfg.std)
    resize = transform.transforms[0]  # type: ignore[attr-defined]
    assert resize.max_size == 64 * MAX_ASPECT
    assert transform(Image.new("RGB", (100 * 64, 64))).shape == (3, 64, 64)  # squeezed, not 409,600 px
