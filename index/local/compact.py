"""CompactFeatures: what the local index and verification keep of a photo's SIFT features.

Per keypoint: its position (float16 x, y in pixels of the photo scaled to ``MAX_SIDE``), its
visual word (uint16: a codebook has at most 65,536 words), the signs of its residual to that
word's centroid (128 bits: the binary signature that ASMK aggregates per word, Tolias et al.,
"To aggregate or not to aggregate", ICCV 2013), and a product-quantised copy of its RootSIFT
descriptor (``pq_bytes`` bytes) for the ratio test of geometric verification. With 300
keypoints and 16-byte codes that is 8 + 300 x 38 = 11.4 KB per photo, against 136 bytes a
keypoint for the raw SIFT features.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

SIGNATURE_BYTES = 16  # 128 residual signs
_HEADER = struct.Struct("<4sIH")  # magic, keypoint count, PQ bytes per keypoint
_MAGIC = b"LC01"


@dataclass(frozen=True)
class CompactFeatures:
    """Row i of every array describes keypoint i (strongest first)."""

    keypoints: np.ndarray  # (N, 2) float32
    words: np.ndarray  # (N,) int64 visual word ids
    signatures: np.ndarray  # (N, 16) uint8: packed residual signs
    codes: np.ndarray  # (N, M) uint8: PQ codes of the RootSIFT descriptors

    def __post_init__(self) -> None:
        n = len(self.keypoints)
        if (
            self.keypoints.shape != (n, 2)
            or self.words.shape != (n,)
            or self.signatures.shape != (n, SIGNATURE_BYTES)
            or self.codes.ndim != 2
            or len(self.codes) != n
        ):
            raise ValueError(
                f"compact features need (N, 2) keypoints, (N,) words, (N, {SIGNATURE_BYTES}) signatures "
                f"and (N, M) codes, got {self.keypoints.shape}, {self.words.shape}, "
                f"{self.signatures.shape}, {self.codes.shape}"
            )

    @property
    def count(self) -> int:
        return len(self.keypoints)

    def aggregate(self) -> tuple[np.ndarray, np.ndarray]:
        """ASMK's one vector per visual word: (U,) sorted unique words and (U, 2) uint64 binary
        codes, each the majority of the signs of that word's keypoints (ties positive)."""
        order = np.argsort(self.words, kind="stable")
        words = self.words[order]
        unique, starts = np.unique(words, return_index=True)
        if len(unique) == 0:
            return unique.astype(np.int64), np.zeros((0, 2), np.uint64)
        signs = np.unpackbits(self.signatures[order], axis=1).astype(np.int16) * 2 - 1  # (N, 128) +-1
        votes = np.add.reduceat(signs, starts, axis=0)  # (U, 128)
        return unique.astype(np.int64), np.packbits(votes >= 0, axis=1).view(np.uint64)

    def to_bytes(self) -> bytes:
        n, m = self.count, self.codes.shape[1]
        return b"".join(
            (
                _HEADER.pack(_MAGIC, n, m),
                np.ascontiguousarray(self.keypoints, "<f2").tobytes(),
                np.ascontiguousarray(self.words, "<u2").tobytes(),
                np.ascontiguousarray(self.signatures, np.uint8).tobytes(),
                np.ascontiguousarray(self.codes, np.uint8).tobytes(),
            )
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> CompactFeatures:
        """Raises ``ValueError`` for bytes ``to_bytes`` did not write."""
        if len(data) < _HEADER.size:
            raise ValueError("compact features blob is too short")
        magic, n, m = _HEADER.unpack_from(data)
        if magic != _MAGIC or len(data) != _HEADER.size + n * (4 + 2 + SIGNATURE_BYTES + m):
            raise ValueError(f"not a compact features blob ({len(data)} bytes, magic {magic!r})")
        at = _HEADER.size
        keypoints = np.frombuffer(data, "<f2", 2 * n, at).reshape(n, 2).astype(np.float32)
        at += 4 * n
        words = np.frombuffer(data, "<u2", n, at).astype(np.int64)
        at += 2 * n
        signatures = np.frombuffer(data, np.uint8, n * SIGNATURE_BYTES, at).reshape(n, SIGNATURE_BYTES)
        at += n * SIGNATURE_BYTES
        codes = np.frombuffer(data, np.uint8, n * m, at).reshape(n, m)
        return cls(keypoints, words, signatures, codes)
