"""JPEG uploads decoded on the encoder's GPU, a batch at a time (nvjpeg, through torchvision).

On a GPU the forward is nearly free and decoding in Pillow becomes the CPU's main work per
search. So, for an encoder on CUDA, the decode pool only reads a JPEG's header (``plan_jpeg``:
size, EXIF orientation, the checks of ``decode_image``), and the batch thread decodes all the
batch's JPEGs in one call (``decode_jpegs``) and turns each into the model's input on the GPU
(``to_model_input``: upright, cropped, shorter side resized, centre square, normalised).

The CPU path (``Preprocessor``) stays the reference and the fallback: a photo that is not a
JPEG, one whose header is unusual or breaks a limit (it gets no plan, and the CPU path gives the
error answer it always gave), and one the GPU decoder refuses all take it. Nothing here decides
whether an upload is acceptable.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from PIL import Image
from torchvision.io import ImageReadMode, decode_jpeg
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from encoder.crop import Crop
from encoder.images import MAX_ASPECT, ROTATED, ImageDecodeError, check_shape, sniff_format

# torchvision 0.29 warns on every call that its decoders move to TorchCodec; they still work.
warnings.filterwarnings(
    "ignore", "The image decoding and encoding capabilities of TorchVision", DeprecationWarning
)

# Larger photos take the CPU path, where Pillow decodes a JPEG at a reduced DCT scale: decoded
# whole on the GPU, 32 photos of 40 MP would hold 15 GB there as float.
GPU_MAX_PIXELS = 16_000_000
_END_OF_IMAGE = b"\xff\xd9"
_DECODABLE_MODES = frozenset({"RGB", "L"})  # CMYK and the like: Pillow converts them its own way


@dataclass(frozen=True)
class JpegPlan:
    """A JPEG upload whose header passed every check, waiting for its batch to be decoded."""

    data: bytes
    orientation: int  # EXIF orientation, 1 (as stored) to 8
    crop: Crop | None = None


def plan_jpeg(data: bytes, max_pixels: int, crop: Crop | None = None) -> JpegPlan | None:
    """The plan for decoding ``data`` on the GPU, from its header alone; None for anything the CPU
    path should handle (and answer for): another format, a file that does not end where a JPEG
    ends (truncated, or bytes after it), an unreadable header, more than ``max_pixels`` or
    ``GPU_MAX_PIXELS``, an unusable shape of the photo or of ``crop``."""
    if sniff_format(data) != "jpeg" or not data.endswith(_END_OF_IMAGE):
        return None  # a truncated JPEG: Pillow refuses it, a GPU decoder might fill in grey
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > min(max_pixels, GPU_MAX_PIXELS) or image.mode not in _DECODABLE_MODES:
                return None
            check_shape(width, height)
            orientation = int(image.getexif().get(0x0112, 1))
    except (ImageDecodeError, Image.DecompressionBombError, Image.DecompressionBombWarning):
        return None
    except (OSError, SyntaxError, ValueError):  # a damaged header: the CPU path says so
        return None
    orientation = orientation if 1 <= orientation <= 8 else 1  # Pillow ignores the others too
    if crop is not None:
        upright = (height, width) if orientation in ROTATED else (width, height)
        left, top, right, bottom = crop.box(*upright)
        try:
            check_shape(right - left, bottom - top, "the marked region (crop)", "crop")
        except ImageDecodeError:
            return None
    return JpegPlan(data, orientation, crop)


def decode_jpegs(plans: Sequence[JpegPlan], device: torch.device | str) -> list[torch.Tensor | None]:
    """Each plan's (3, H, W) uint8 RGB pixels on ``device`` (as stored: EXIF not applied), or None
    where the decoder refused the file. One batched call; the decoder gives no partial results, so
    when it fails each file is decoded alone and only the bad ones come back None."""
    if not plans:
        return []
    raw = [torch.frombuffer(bytearray(p.data), dtype=torch.uint8) for p in plans]
    try:
        return list(decode_jpeg(raw, mode=ImageReadMode.RGB, device=device))
    except (RuntimeError, ValueError):
        pass
    decoded: list[torch.Tensor | None] = []
    for one in raw:
        try:
            decoded.append(decode_jpeg([one], mode=ImageReadMode.RGB, device=device)[0])
        except (RuntimeError, ValueError):
            decoded.append(None)
    return decoded


def upright(image: torch.Tensor, orientation: int) -> torch.Tensor:
    """(C, H, W) as stored -> as meant to be seen: the transposes of Pillow's ``exif_transpose``."""
    if orientation == 2:  # mirrored
        return image.flip(-1)
    if orientation == 3:  # upside down
        return image.flip(-2, -1)
    if orientation == 4:
        return image.flip(-2)
    if orientation == 5:  # transposed
        return image.transpose(-2, -1)
    if orientation == 6:  # turned a quarter anticlockwise: turn it back clockwise
        return torch.rot90(image, -1, (-2, -1))
    if orientation == 7:  # transversed
        return image.transpose(-2, -1).flip(-2, -1)
    if orientation == 8:
        return torch.rot90(image, 1, (-2, -1))
    return image


@dataclass(frozen=True)
class GpuInput:
    """Decoded pixels -> the encoder's input, as ``eval_transform`` makes it from a Pillow image."""

    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __call__(self, pixels: torch.Tensor, plan: JpegPlan) -> torch.Tensor:
        """(3, H, W) uint8 as decoded -> (3, S, S) float32 normalised, on the same device."""
        image = upright(pixels, plan.orientation)
        if plan.crop is not None:
            left, top, right, bottom = plan.crop.box(image.shape[-1], image.shape[-2])
            image = image[:, top:bottom, left:right]
        x = image.to(torch.float32).div_(255)  # (3, h, w) in [0, 1]
        x = F.resize(
            x,
            [self.image_size],
            interpolation=v2.InterpolationMode.BICUBIC,
            max_size=round(self.image_size * MAX_ASPECT),
            antialias=True,
        )
        x = F.center_crop(x, [self.image_size, self.image_size]).clamp_(0, 1)  # bicubic overshoots
        return F.normalize(x, list(self.mean), list(self.std))
