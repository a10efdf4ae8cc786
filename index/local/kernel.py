"""The selective match kernel of ASMK* (Tolias, Avrithis & Jegou, ICCV 2013): two photos' binary
vectors of one visual word count as ``sign(u) |u|^alpha`` of their similarity ``u = 1 - 2 h / B``
(``h`` the Hamming distance of B bits) when ``u > tau``, else nothing. alpha = 3 keeps near
agreement and silences chance agreement; each word's matches weigh its idf squared; a photo's
score is normalised by both photos' self-similarity."""

from __future__ import annotations

import numpy as np

BITS = 128
ALPHA = 3.0
TAU = 0.0


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a, b (N, 2) uint64 -> (N,) int64 differing bits."""
    return np.bitwise_count(a ^ b).sum(1, dtype=np.int64)


def selective_similarity(distance: np.ndarray, alpha: float = ALPHA, tau: float = TAU) -> np.ndarray:
    """(N,) Hamming distances -> (N,) float32 kernel values in [0, 1]."""
    if alpha == ALPHA and tau == TAU:
        return _TABLE[distance]  # one gather instead of a power per posting
    return _kernel(distance, alpha, tau)


def _kernel(distance: np.ndarray, alpha: float, tau: float) -> np.ndarray:
    u = 1.0 - 2.0 * np.asarray(distance, np.float32) / BITS
    return np.where(u > tau, u**alpha, 0.0).astype(np.float32)


_TABLE = _kernel(np.arange(BITS + 1), ALPHA, TAU)  # (129,): the kernel at every distance
