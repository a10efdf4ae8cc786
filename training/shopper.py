"""Augmentations that turn a clean catalog photo into a plausible shopper's phone photo.

A shopper photographs the product at an angle, slightly tilted, with a hand in the frame, under
a lamp that leaves a glare and a colour cast, with a shaking hand, and the phone recompresses
the result. Each class below imitates one of these on a PIL RGB image and returns one of the
same size and mode; each applies with probability ``p`` (0: never, the image is returned as is).
The background of a packshot is replaced in ``training/background.py``.

All randomness comes from torch's generator, which the DataLoader seeds per worker (numpy's is
not), so two workers never draw the same augmentations and a seeded run repeats exactly.

Cost per call with p=1 on a 500x500 RGB photo, one thread (``bench/shopper_augment.py``, median
of 150 demo photos, measured on 2 cores busy with a training run, so upper bounds): noted in each
docstring. In ``view_transform`` they run on the cropped view (224 px or less), about a fifth
of the pixels.
"""

from __future__ import annotations

import io
import math

import cv2
import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter


def _uniform(low: float, high: float) -> float:
    return float(torch.empty(()).uniform_(low, high))


def _chance(p: float) -> bool:
    return p > 0 and float(torch.rand(())) < p


def _check_p(p: float) -> None:
    if not 0 <= p <= 1:
        raise ValueError(f"p must be in [0, 1], got {p}")


def _warp(image: Image.Image, matrix: np.ndarray) -> Image.Image:
    """Apply a 3x3 homography; what leaves the frame is filled by mirroring the photo's edge
    (a plausible continuation of the scene, never black corners)."""
    pixels = np.asarray(image)
    h, w = pixels.shape[:2]
    out = cv2.warpPerspective(
        pixels, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101
    )
    return Image.fromarray(out)


class RandomPerspectiveWarp:
    """The product seen at an angle: each corner moves inwards or outwards by up to
    ``distortion`` x half the side, and the photo is warped to match (edge mirrored into the
    gaps). About 4.5 ms per 500x500 photo."""

    def __init__(self, p: float = 0.5, distortion: float = 0.3) -> None:
        _check_p(p)
        if not 0 <= distortion < 1:
            raise ValueError(f"distortion must be in [0, 1), got {distortion}")
        self.p, self.distortion = p, distortion

    def __call__(self, image: Image.Image) -> Image.Image:
        if not _chance(self.p):
            return image
        w, h = image.size
        corners = np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], dtype=np.float32)  # (4, 2)
        shift = torch.empty(4, 2).uniform_(-self.distortion, self.distortion).numpy() / 2  # (4, 2)
        moved = (corners + shift * np.array([w, h], dtype=np.float32)).astype(np.float32)
        return _warp(image, cv2.getPerspectiveTransform(corners, moved))


class SmallRotation:
    """The phone held slightly askew: a rotation of up to ``degrees`` either way about the
    centre, the corners filled by mirroring the photo's edge. About 3.3 ms per 500x500 photo."""

    def __init__(self, p: float = 0.5, degrees: float = 8.0) -> None:
        _check_p(p)
        if not 0 <= degrees <= 45:
            raise ValueError(f"degrees must be in [0, 45], got {degrees}")
        self.p, self.degrees = p, degrees

    def __call__(self, image: Image.Image) -> Image.Image:
        if not _chance(self.p):
            return image
        w, h = image.size
        affine = cv2.getRotationMatrix2D((w / 2, h / 2), _uniform(-self.degrees, self.degrees), 1.0)
        return _warp(image, np.vstack([affine, [0, 0, 1]]))


# Skin tones from light to dark (sRGB), for the hand of ``HandOcclusion``.
SKIN_TONES: tuple[tuple[int, int, int], ...] = (
    (241, 194, 167),
    (224, 172, 138),
    (198, 134, 99),
    (161, 102, 70),
    (112, 69, 45),
    (74, 46, 32),
)


class HandOcclusion:
    """A hand (or a sleeve, a price tag) in front of the product: a soft-edged ellipse reaching
    in from one side of the frame, covering a share ``scale`` of the photo, skin-toned with
    probability ``skin_p`` and of a random colour otherwise, shaded from one end to the other.
    About 1.2 ms per 500x500 photo."""

    def __init__(self, p: float = 0.3, scale: tuple[float, float] = (0.05, 0.2), skin_p: float = 0.7) -> None:
        _check_p(p)
        _check_p(skin_p)
        if not 0 < scale[0] <= scale[1] <= 0.5:
            raise ValueError(f"scale must satisfy 0 < min <= max <= 0.5, got {scale}")
        self.p, self.scale, self.skin_p = p, scale, skin_p

    def __call__(self, image: Image.Image) -> Image.Image:
        if not _chance(self.p):
            return image
        w, h = image.size
        area = _uniform(*self.scale) * w * h
        aspect = math.exp(_uniform(math.log(0.4), math.log(1.0)))  # a hand is longer than wide
        length = math.sqrt(4 * area / (math.pi * aspect))  # ellipse of area pi * a * b
        rx, ry = length / 2, length * aspect / 2
        side = int(torch.randint(4, ()))  # the hand comes in from this side: 0 left, 1 top, ...
        if side in (1, 3):
            rx, ry = ry, rx
        cx, cy = _uniform(0, w), _uniform(0, h)
        cx = {0: rx * 0.4, 2: w - rx * 0.4}.get(side, cx)
        cy = {1: ry * 0.4, 3: h - ry * 0.4}.get(side, cy)
        # Drawn only over the ellipse's box (clipped to the photo): the cost follows its size.
        box = (max(0, int(cx - rx)), max(0, int(cy - ry)), min(w, int(cx + rx) + 1), min(h, int(cy + ry) + 1))
        bw, bh = box[2] - box[0], box[3] - box[1]
        if bw < 1 or bh < 1:
            return image
        mask = Image.new("L", (bw, bh), 0)
        ex, ey = cx - box[0], cy - box[1]
        ImageDraw.Draw(mask).ellipse([ex - rx, ey - ry, ex + rx, ey + ry], fill=255)
        mask = mask.filter(ImageFilter.BoxBlur(max(1, min(w, h) // 150)))
        if _chance(self.skin_p):
            colour = np.array(SKIN_TONES[int(torch.randint(len(SKIN_TONES), ()))], dtype=np.float32)
        else:
            colour = torch.randint(0, 256, (3,)).float().numpy()
        along = side in (0, 2)  # lit at one end, shaded towards the other
        ramp = np.linspace(0.75, 1.1, bw if along else bh, dtype=np.float32)
        shade = ramp[None, :, None] if along else ramp[:, None, None]
        hand = np.clip(colour * np.broadcast_to(shade, (bh, bw, 1)), 0, 255).astype(np.uint8)
        out = image.copy()
        out.paste(Image.fromarray(hand), box[:2], mask)
        return out


class Glare:
    """A lamp or the sky reflected on a glossy package: a soft elliptical highlight at a random
    place, blended towards white with peak ``strength`` in ``strength`` (screen-like, so bright
    areas stay bright and dark ones wash out). About 2.0 ms per 500x500 photo."""

    def __init__(self, p: float = 0.3, strength: tuple[float, float] = (0.4, 0.9)) -> None:
        _check_p(p)
        if not 0 <= strength[0] <= strength[1] <= 1:
            raise ValueError(f"strength must satisfy 0 <= min <= max <= 1, got {strength}")
        self.p, self.strength = p, strength

    def __call__(self, image: Image.Image) -> Image.Image:
        if not _chance(self.p):
            return image
        w, h = image.size
        # The highlight is drawn on a 64 px grid and scaled up: smooth anyway, 30x cheaper.
        g = 64
        y, x = np.mgrid[0:g, 0:g].astype(np.float32) / g
        cx, cy = _uniform(0.1, 0.9), _uniform(0.1, 0.9)
        a, b = _uniform(0.08, 0.3), _uniform(0.04, 0.15)
        angle = _uniform(0, math.pi)
        dx, dy = x - cx, y - cy
        u = dx * math.cos(angle) + dy * math.sin(angle)
        v = -dx * math.sin(angle) + dy * math.cos(angle)
        blob = np.exp(-((u / a) ** 2 + (v / b) ** 2)) * _uniform(*self.strength)  # (g, g) in [0, 1]
        alpha = Image.fromarray((blob * 255).astype(np.uint8)).resize((w, h), Image.Resampling.BILINEAR)
        return Image.composite(Image.new("RGB", (w, h), (255, 255, 255)), image, alpha)


def _apply_gains(image: Image.Image, gains: tuple[float, float, float], gamma: float = 1.0) -> Image.Image:
    """Per-channel gains in linear light (sRGB approximated by a 2.2 power) as one lookup table."""
    levels = (np.arange(256, dtype=np.float64) / 255) ** 2.2
    lut = np.concatenate([np.clip((levels * g) ** (1 / 2.2) * 255, 0, 255) for g in gains])
    return image.point(np.round(lut).astype(np.uint8).tolist())


class WhiteBalanceShift:
    """The colour cast of indoor light: red and blue gains drawn in [1 - shift, 1 + shift]
    around a fixed green, applied in linear light. About 0.5 ms per 500x500 photo (a lookup)."""

    def __init__(self, p: float = 0.5, shift: float = 0.15) -> None:
        _check_p(p)
        if not 0 <= shift < 1:
            raise ValueError(f"shift must be in [0, 1), got {shift}")
        self.p, self.shift = p, shift

    def __call__(self, image: Image.Image) -> Image.Image:
        if not _chance(self.p):
            return image
        s = self.shift
        return _apply_gains(image, (_uniform(1 - s, 1 + s), 1.0, _uniform(1 - s, 1 + s)))


class ExposureShift:
    """Under- or over-exposure: every channel multiplied by 2^e in linear light, e drawn in
    [-stops, stops], highlights clipping as a sensor's do. About 0.5 ms per 500x500 photo."""

    def __init__(self, p: float = 0.5, stops: float = 0.7) -> None:
        _check_p(p)
        if not 0 <= stops <= 4:
            raise ValueError(f"stops must be in [0, 4], got {stops}")
        self.p, self.stops = p, stops

    def __call__(self, image: Image.Image) -> Image.Image:
        if not _chance(self.p):
            return image
        gain = 2 ** _uniform(-self.stops, self.stops)
        return _apply_gains(image, (gain, gain, gain))


class MotionBlur:
    """Camera shake: a line kernel of ``length`` pixels (drawn in the range, scaled to a 500 px
    photo) at a random angle. About 1.4 ms per 500x500 photo (cv2.filter2D)."""

    def __init__(self, p: float = 0.3, length: tuple[int, int] = (3, 11)) -> None:
        _check_p(p)
        if not 1 <= length[0] <= length[1]:
            raise ValueError(f"length must satisfy 1 <= min <= max, got {length}")
        self.p, self.length = p, length

    def __call__(self, image: Image.Image) -> Image.Image:
        if not _chance(self.p):
            return image
        w, h = image.size
        scale = max(w, h) / 500
        k = max(2, round(int(torch.randint(self.length[0], self.length[1] + 1, ())) * scale))
        kernel = np.zeros((k, k), dtype=np.float32)
        angle = _uniform(0, math.pi)
        c, r = (k - 1) / 2, (k - 1) / 2
        end = (round(c + r * math.cos(angle)), round(c + r * math.sin(angle)))
        start = (round(c - r * math.cos(angle)), round(c - r * math.sin(angle)))
        cv2.line(kernel, start, end, 1.0, thickness=1)
        kernel /= kernel.sum()
        return Image.fromarray(cv2.filter2D(np.asarray(image), -1, kernel, borderType=cv2.BORDER_REFLECT_101))


class JpegRecompression:
    """The phone's (or the messaging app's) JPEG: re-encoded at a quality drawn in ``quality``
    and decoded again, blocking and ringing included. About 2.9 ms per 500x500 photo."""

    def __init__(self, p: float = 0.5, quality: tuple[int, int] = (20, 70)) -> None:
        _check_p(p)
        if not 1 <= quality[0] <= quality[1] <= 95:
            raise ValueError(f"quality must satisfy 1 <= min <= max <= 95, got {quality}")
        self.p, self.quality = p, quality

    def __call__(self, image: Image.Image) -> Image.Image:
        if not _chance(self.p):
            return image
        buf = io.BytesIO()
        image.save(buf, format="JPEG", quality=int(torch.randint(self.quality[0], self.quality[1] + 1, ())))
        buf.seek(0)
        with Image.open(buf) as decoded:
            return decoded.convert("RGB")
