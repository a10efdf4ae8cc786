"""Local features of a photo: SIFT keypoints and descriptors, for geometric verification.

Global embeddings say "looks alike"; local features matched under one homography say "this very
printed surface" (a DVD cover, a cereal box, a label). They are computed once per catalog photo
(kept in the store beside its embedding) and once per shopper's photo, on a grey copy whose longer
side is at most ``MAX_SIDE`` pixels. OpenCV's SIFT descriptors are whole numbers 0..255 (it
rounds them, even in its float output), so they are kept as uint8: 128 bytes per keypoint.

Examples:
    >>> features = extract_features(open("photo.jpg", "rb").read())  # doctest: +SKIP
    >>> LocalFeatures.from_bytes(features.to_bytes()).count  # doctest: +SKIP
    500
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

from encoder.crop import Crop
from encoder.images import DEFAULT_MAX_PIXELS, decode_image

MAX_SIDE = 400  # longer side the keypoints are found at: as good as 640 on smvs-dvd, half the CPU
MAX_KEYPOINTS = 300  # the strongest ones are kept: as good as 500 for the local index, 11 KB a photo
FEATURES_KIND = f"sift{MAX_KEYPOINTS}@{MAX_SIDE}"  # part of a stored blob's kind: others are not compared
DESCRIPTOR_DIM = 128
_HEADER = struct.Struct("<4sI")  # magic, keypoint count
_MAGIC = b"LF01"


@dataclass(frozen=True)
class LocalFeatures:
    """Keypoints and their descriptors, row for row, the strongest keypoint (SIFT response) first."""

    keypoints: np.ndarray  # (N, 2) float32: x, y in pixels of the image scaled to MAX_SIDE
    descriptors: np.ndarray  # (N, 128) uint8

    def __post_init__(self) -> None:
        n = len(self.keypoints)
        if self.keypoints.shape != (n, 2) or self.descriptors.shape != (n, DESCRIPTOR_DIM):
            raise ValueError(
                f"keypoints must be (N, 2) and descriptors (N, {DESCRIPTOR_DIM}), got "
                f"{self.keypoints.shape} and {self.descriptors.shape}"
            )

    @property
    def count(self) -> int:
        return len(self.keypoints)

    def to_bytes(self) -> bytes:
        """Header, keypoints (float32), descriptors (uint8): 8 + 136 N bytes."""
        keypoints = np.ascontiguousarray(self.keypoints, dtype="<f4")
        descriptors = np.ascontiguousarray(self.descriptors, dtype=np.uint8)
        return _HEADER.pack(_MAGIC, self.count) + keypoints.tobytes() + descriptors.tobytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> LocalFeatures:
        """Raises ``ValueError`` for bytes ``to_bytes`` did not write."""
        if len(data) < _HEADER.size:
            raise ValueError("local features blob is too short")
        magic, n = _HEADER.unpack_from(data)
        if magic != _MAGIC or len(data) != _HEADER.size + n * (8 + DESCRIPTOR_DIM):
            raise ValueError(f"not a local features blob ({len(data)} bytes, magic {magic!r})")
        split = _HEADER.size + 8 * n
        keypoints = np.frombuffer(data, "<f4", 2 * n, _HEADER.size).reshape(n, 2)
        descriptors = np.frombuffer(data, np.uint8, n * DESCRIPTOR_DIM, split).reshape(n, DESCRIPTOR_DIM)
        return cls(keypoints.astype(np.float32), descriptors)


def grey_for_features(image: Image.Image, max_side: int = MAX_SIDE) -> np.ndarray:
    """An RGB photo -> (H, W) uint8 grey, the longer side scaled down to ``max_side`` (never up)."""
    grey = image.convert("L")
    scale = max_side / max(grey.size)
    if scale < 1:
        size = (max(1, round(grey.width * scale)), max(1, round(grey.height * scale)))
        grey = grey.resize(size, Image.Resampling.BILINEAR)  # Pillow filters over the whole footprint
    return np.asarray(grey)


def features_of_image(
    image: Image.Image, max_keypoints: int = MAX_KEYPOINTS, max_side: int = MAX_SIDE
) -> LocalFeatures:
    """The SIFT features of a decoded photo (a new detector per call: OpenCV's are not thread-safe)."""
    sift = cv2.SIFT.create(nfeatures=max_keypoints)
    found, descriptors = sift.detectAndCompute(grey_for_features(image, max_side), None)
    if descriptors is None or not found:
        return LocalFeatures(np.zeros((0, 2), np.float32), np.zeros((0, DESCRIPTOR_DIM), np.uint8))
    order = np.argsort([-k.response for k in found], kind="stable")[:max_keypoints]  # strongest first
    keypoints = np.array([found[i].pt for i in order], dtype=np.float32)  # (N, 2)
    return LocalFeatures(keypoints, np.clip(np.rint(descriptors[order]), 0, 255).astype(np.uint8))


def extract_features(
    data: bytes, crop: Crop | None = None, max_pixels: int = DEFAULT_MAX_PIXELS
) -> LocalFeatures:
    """Untrusted image bytes -> their local features, decoded with the upload checks of
    ``decode_image`` (raises ``ImageDecodeError``); ``crop``: only the region the shopper marked."""
    return features_of_image(decode_image(data, max_pixels, MAX_SIDE, crop))
