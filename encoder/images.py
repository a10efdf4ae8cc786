"""Decoding untrusted image bytes into RGB PIL images, with the checks a server needs."""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from encoder.crop import Crop

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
# The model sees the shorter side scaled to its input size, so the longer side scales by the same
# factor: without these two bounds an 84-byte 20000x1 PNG becomes a 224 x 4,480,000 resize (4 GB).
MIN_SIDE = 16  # pixels, of the photo and of a marked region
MAX_ASPECT = 20.0  # longer side / shorter side, of the photo and of a marked region
ROTATED = frozenset({5, 6, 7, 8})  # EXIF orientations that swap width and height


class ImageDecodeError(ValueError):
    """The bytes are not a usable image. ``kind`` is 'unsupported', 'too_large', 'corrupt', 'shape'
    (a side under ``MIN_SIDE`` or an aspect ratio over ``MAX_ASPECT``) or 'crop' (the same, of the
    marked region)."""

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


def check_shape(width: int, height: int, what: str = "the image", kind: str = "shape") -> None:
    """Raise ``ImageDecodeError(kind)`` when a side is under ``MIN_SIDE`` pixels or the longer side
    is over ``MAX_ASPECT`` times the shorter: such images cost far more to resize than they say."""
    short, long = min(width, height), max(width, height)
    if short < MIN_SIDE:
        raise ImageDecodeError(
            kind, f"{what} is {width}x{height} pixels; each side must be at least {MIN_SIDE} pixels"
        )
    if long > MAX_ASPECT * short:
        raise ImageDecodeError(
            kind,
            f"{what} is {width}x{height} pixels; the longer side may be at most {MAX_ASPECT:g} times "
            "the shorter",
        )


def _check_crop(width: int, height: int, crop: Crop | None) -> None:
    """The shape checks of the region ``crop`` marks in an upright ``width`` x ``height`` photo."""
    if crop is not None:
        left, top, right, bottom = crop.box(width, height)
        check_shape(right - left, bottom - top, "the marked region (crop)", "crop")


def _header_orientation(image: Image.Image) -> int | None:
    """The EXIF orientation, when it can be read without decoding pixels (None: not yet known; a
    PNG may keep its EXIF after the pixel data, and Pillow would decode the image to find it)."""
    if image.format == "PNG" and "exif" not in image.info:
        return None
    return int(image.getexif().get(0x0112, 1))


def decode_image(
    data: bytes,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    draft_size: int | None = None,
    crop: Crop | None = None,
) -> Image.Image:
    """Bytes -> fully decoded RGB image with EXIF orientation applied, cut to ``crop`` if given.

    Raises ``ImageDecodeError`` for an unknown format (content sniffed, not trusted from a
    name or header), an image over ``max_pixels`` or of an unusable shape (``check_shape``, of
    the photo and of the crop; both checked from the header, before decoding: the
    decompression-bomb guard) or truncated/corrupt data. ``draft_size`` lets JPEG decode at a
    reduced DCT scale when the model needs far fewer pixels: each side of the (cropped) result
    keeps at least that many where the photo has them.
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
            check_shape(width, height)  # either way up
            orientation = _header_orientation(image)
            if orientation is not None:
                _check_crop(*((height, width) if orientation in ROTATED else (width, height)), crop)
            if draft_size and fmt == "jpeg":
                # decode finely enough that the cropped region still has the pixels asked for
                scale = 1.0 if crop is None else min(crop.w, crop.h)
                wanted = int(draft_size / scale)
                image.draft("RGB", (wanted, wanted))
            image.load()
            upright = ImageOps.exif_transpose(image)
            # again now that the orientation is surely known, in the full-size photo's pixels
            swapped = upright.size != image.size
            _check_crop(*((height, width) if swapped else (width, height)), crop)
            upright = upright.convert("RGB")
            return upright if crop is None else upright.crop(crop.box(*upright.size))
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
