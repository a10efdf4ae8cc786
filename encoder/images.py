"""Decoding untrusted image bytes into RGB PIL images, with the checks a server needs."""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

# Magic numbers of the formats we accept, checked before Pillow sees the bytes.
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "jpeg"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"BM", "bmp"),
)
SUPPORTED_FORMATS = ("jpeg", "png", "webp", "gif", "bmp")
DEFAULT_MAX_PIXELS = 40_000_000


class ImageDecodeError(ValueError):
    """The bytes are not a usable image. ``kind`` is 'unsupported', 'too_large' or 'corrupt'."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def sniff_format(data: bytes) -> str | None:
    """The image format named by the leading bytes, or None when it is not one we accept."""
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    for signature, name in _SIGNATURES:
        if data.startswith(signature):
            return name
    return None


def decode_image(
    data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, draft_size: int | None = None
) -> Image.Image:
    """Bytes -> fully decoded RGB image with EXIF orientation applied.

    Raises ``ImageDecodeError`` for an unknown format (content sniffed, not trusted from a
    name or header), an image over ``max_pixels`` (checked from the header, before decoding:
    the decompression-bomb guard) or truncated/corrupt data. ``draft_size`` lets JPEG decode
    at a reduced DCT scale when the model needs far fewer pixels.
    """
    if not data:
        raise ImageDecodeError("corrupt", "the image is empty (0 bytes)")
    fmt = sniff_format(data)
    if fmt is None:
        raise ImageDecodeError(
            "unsupported", f"not an image we accept; send one of: {', '.join(SUPPORTED_FORMATS)}"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > max_pixels:
                raise ImageDecodeError(
                    "too_large",
                    f"image is {width}x{height} = {width * height} pixels; the limit is {max_pixels}",
                )
            if draft_size and fmt == "jpeg":
                image.draft("RGB", (draft_size, draft_size))
            image.load()
            return ImageOps.exif_transpose(image).convert("RGB")
    except ImageDecodeError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageDecodeError("too_large", f"image rejected as a decompression bomb: {exc}") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageDecodeError("corrupt", f"the image could not be decoded: {exc}") from exc


IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp"})


def list_image_files(root: str | os.PathLike[str]) -> list[Path]:
    """All image files under ``root`` (recursively, by suffix), sorted for reproducibility."""
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"{root} is not a directory of images")
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def open_image_file(path: str | os.PathLike[str], max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Read and decode an image file from disk (same checks as uploads)."""
    return decode_image(Path(path).read_bytes(), max_pixels=max_pixels)
