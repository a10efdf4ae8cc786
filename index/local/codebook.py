"""Codebook: the visual vocabulary of one store, and the product quantiser of its descriptors.

Trained once from a sample of the catalog's SIFT descriptors (RootSIFT: L1-normalised, square
root; Arandjelovic & Zisserman, CVPR 2012) with FAISS k-means, as ASMK's ``codebook.py`` does.
A word is found through an HNSW graph over the centroids (6 ms for 500 descriptors against 74 ms
exhaustively, 99 % the same word). The product quantiser (16 sub-vectors of 256 centroids)
keeps each descriptor in 16 bytes for the ratio test of verification. The codebook is kept in the
store's database (``local_codebook``), named by the hash of its bytes; stored features carry
that name in their kind, so features of another codebook are never compared.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from typing import Any

import faiss
import numpy as np

from encoder.local_features import DESCRIPTOR_DIM, LocalFeatures
from index.local.compact import SIGNATURE_BYTES, CompactFeatures

MAX_WORDS = 1 << 16  # words are kept as uint16
PQ_BYTES = 16
MIN_POINTS_PER_WORD = 20  # descriptors per word the sample must give k-means


def root_sift(descriptors: np.ndarray) -> np.ndarray:
    """(N, 128) SIFT (any dtype) -> (N, 128) float32 RootSIFT, unit L2 norm."""
    x = descriptors.astype(np.float32)
    x /= x.sum(1, keepdims=True) + 1e-7
    return np.sqrt(x)


def words_for(descriptors: int, most: int = 8192) -> int:
    """The vocabulary size a sample of ``descriptors`` can train: a power of two, 256 to ``most``."""
    k = 256
    while k * 2 <= most and k * 2 * MIN_POINTS_PER_WORD <= descriptors:
        k *= 2
    return k


@dataclass
class Codebook:
    """centroids (K, 128) float32 RootSIFT words; pq_centroids (M, 256, 128 / M) float32."""

    centroids: np.ndarray
    pq_centroids: np.ndarray
    _quantizer: faiss.Index = field(init=False, repr=False)
    _pq: faiss.ProductQuantizer = field(init=False, repr=False)
    _name: str = field(init=False, repr=False)

    def __post_init__(self) -> None:
        k, m = len(self.centroids), len(self.pq_centroids)
        if not 2 <= k <= MAX_WORDS or self.centroids.shape != (k, DESCRIPTOR_DIM):
            raise ValueError(
                f"a codebook needs 2..{MAX_WORDS} centroids of {DESCRIPTOR_DIM}, got {self.centroids.shape}"
            )
        if m < 1 or DESCRIPTOR_DIM % m or self.pq_centroids.shape != (m, 256, DESCRIPTOR_DIM // m):
            raise ValueError(
                f"PQ centroids must be (M, 256, {DESCRIPTOR_DIM} / M), got {self.pq_centroids.shape}"
            )
        self.centroids = np.ascontiguousarray(self.centroids, np.float32)
        self.pq_centroids = np.ascontiguousarray(self.pq_centroids, np.float32)
        self._name = hashlib.sha256(self.centroids.tobytes() + self.pq_centroids.tobytes()).hexdigest()[:16]
        self._quantizer = faiss.IndexHNSWFlat(DESCRIPTOR_DIM, 16)
        self._quantizer.hnsw.efConstruction = 40
        threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)  # one thread builds the same graph in every process: same words
        try:
            self._quantizer.add(self.centroids)
        finally:
            faiss.omp_set_num_threads(threads)
        self._quantizer.hnsw.efSearch = 16
        self._pq = faiss.ProductQuantizer(DESCRIPTOR_DIM, m, 8)
        faiss.copy_array_to_vector(
            np.ascontiguousarray(self.pq_centroids, np.float32).ravel(), self._pq.centroids
        )

    @property
    def size(self) -> int:
        return len(self.centroids)

    @property
    def name(self) -> str:
        """The first 16 hex digits of the hash of the centroids and the PQ centroids."""
        return self._name

    @classmethod
    def train(cls, descriptors: np.ndarray, words: int, seed: int = 0, iterations: int = 10) -> Codebook:
        """descriptors (N, 128) SIFT of a sample of the catalog -> a codebook of ``words`` words."""
        x = root_sift(descriptors)
        if len(x) < max(words, 256):
            raise ValueError(
                f"{len(x)} descriptors cannot train {words} words and the PQ (need {max(words, 256)})"
            )
        kmeans = faiss.Kmeans(
            DESCRIPTOR_DIM,
            words,
            niter=iterations,
            seed=seed,
            max_points_per_centroid=64,
            min_points_per_centroid=1,
        )
        kmeans.train(x)
        pq = faiss.ProductQuantizer(DESCRIPTOR_DIM, PQ_BYTES, 8)
        pq.cp.min_points_per_centroid = 1  # a small catalog trains on what it has, without a warning
        rng = np.random.default_rng(seed)
        pq.train(np.ascontiguousarray(x[rng.permutation(len(x))[:65536]]))
        pq_centroids = faiss.vector_to_array(pq.centroids).reshape(PQ_BYTES, 256, DESCRIPTOR_DIM // PQ_BYTES)
        assert kmeans.centroids is not None  # set by train
        return cls(kmeans.centroids, pq_centroids)

    def assign(self, rootsift: np.ndarray, nearest: int = 1) -> np.ndarray:
        """(N, 128) RootSIFT -> (N,) int64 word ids; (N, nearest) the nearest words when nearest > 1."""
        if len(rootsift) == 0:
            return np.zeros((0,) if nearest == 1 else (0, nearest), np.int64)
        _, words = self._quantizer.search(np.ascontiguousarray(rootsift, np.float32), nearest)
        return words[:, 0].astype(np.int64) if nearest == 1 else words.astype(np.int64)

    def encode_query(self, features: LocalFeatures, assignments: int = 1) -> CompactFeatures:
        """A query's words and signatures, each keypoint under its ``assignments`` nearest words
        (multiple assignment, as ASMK does on the query side); no PQ codes."""
        if assignments == 1:
            return self.encode(features, with_codes=False)
        x = root_sift(features.descriptors)  # (N, 128)
        words = self.assign(x, assignments)  # (N, A)
        words = words[words >= 0].reshape(-1) if (words < 0).any() else words.reshape(-1)
        repeated = np.repeat(x, assignments, axis=0)[: len(words)]  # (N * A, 128)
        signatures = np.packbits(repeated - self.centroids[words] > 0, axis=1)
        keypoints = np.repeat(features.keypoints, assignments, axis=0)[: len(words)].astype(np.float32)
        return CompactFeatures(keypoints, words, signatures, np.zeros((len(words), 0), np.uint8))

    def encode(self, features: LocalFeatures, with_codes: bool = True) -> CompactFeatures:
        """SIFT features -> their compact form under this codebook; ``with_codes=False`` leaves
        the PQ codes empty (a query's: it is verified with its exact descriptors)."""
        x = root_sift(features.descriptors)  # (N, 128)
        words = self.assign(x)
        signatures = np.packbits(x - self.centroids[words] > 0, axis=1)  # (N, 16)
        if with_codes and len(x):
            codes = self._pq.compute_codes(x)
        else:
            codes = np.zeros((len(x), 0 if len(x) and not with_codes else self._pq.M), np.uint8)
        return CompactFeatures(features.keypoints.astype(np.float32), words, signatures, codes)

    def decode(self, compact: CompactFeatures) -> np.ndarray:
        """(N, 128) float32: the RootSIFT descriptors as the PQ codes keep them."""
        if compact.count == 0:
            return np.zeros((0, DESCRIPTOR_DIM), np.float32)
        decode: Any = self._pq.decode  # faiss's wrapper returns the decoded (N, 128) array
        return np.asarray(decode(np.ascontiguousarray(compact.codes)), np.float32)

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        np.savez(buffer, centroids=self.centroids, pq_centroids=self.pq_centroids)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> Codebook:
        with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
            return cls(arrays["centroids"], arrays["pq_centroids"])


assert SIGNATURE_BYTES * 8 == DESCRIPTOR_DIM  # one sign per descriptor dimension
