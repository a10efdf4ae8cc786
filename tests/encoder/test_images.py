import io
import struct
import zlib

import pytest
from PIL import Image

from encoder import ImageDecodeError, Preprocessor, decode_image, sniff_format
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
