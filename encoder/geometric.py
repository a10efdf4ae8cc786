"""Geometric verification: do two photos show one flat printed surface? RANSAC homography inliers.

Each query descriptor's two nearest candidate descriptors (L2) make a tentative match when the
nearest is clearly nearer than the second (Lowe's ratio test, Lowe 2004, IJCV: "reject all
matches in which the distance ratio is greater than 0.8"); a homography fitted by RANSAC to the
tentative matches keeps those that agree with one plane seen in perspective. The inlier count is
the evidence: photos of unrelated things rarely pass a dozen, photos of one printed product pass
dozens or hundreds.
"""

from __future__ import annotations

import cv2
import numpy as np

from encoder.local_features import LocalFeatures

RATIO = 0.8  # Lowe's ratio test on distances
RANSAC_THRESHOLD_PX = 5.0  # reprojection error, in pixels of the MAX_SIDE-scaled candidate
MIN_MATCHES = 4  # a homography needs four point pairs
RANSAC_ITERATIONS = 500


def tentative_matches(query: LocalFeatures, candidate: LocalFeatures, ratio: float = RATIO) -> np.ndarray:
    """(M, 2) int64 rows (query keypoint, candidate keypoint) passing the ratio test, each
    candidate keypoint in one row at most.

    The distances come from one matrix product in OpenCV (``cv2.gemm``): numpy's multi-threaded
    BLAS spends ten times the CPU on matrices this small, its threads spinning while they wait.
    """
    if query.count == 0 or candidate.count < 2:
        return np.zeros((0, 2), np.int64)
    q = query.descriptors.astype(np.float32)  # (Q, 128)
    c = candidate.descriptors.astype(np.float32)  # (C, 128)
    d2 = cv2.gemm(q, c, -2.0, None, 0.0, flags=cv2.GEMM_2_T)  # type: ignore[call-overload]  # (Q, C): -2 q.c
    d2 += (c * c).sum(1)[None, :]  # squared L2 distances less |q|^2
    rows = np.arange(len(q))
    nearest = d2.argmin(1)  # (Q,)
    qq = (q * q).sum(1)  # (Q,)
    first = d2[rows, nearest] + qq
    d2[rows, nearest] = np.inf
    second = d2.min(1) + qq
    keep = np.flatnonzero(first < (ratio * ratio) * second)  # squared distances: the ratio squared
    # one to one: a candidate keypoint many query keypoints chose keeps the nearest of them only, or
    # RANSAC could fit a homography collapsing them all onto it (every one an "inlier")
    keep = keep[np.argsort(first[keep], kind="stable")]
    _, once = np.unique(nearest[keep], return_index=True)
    keep = np.sort(keep[once])
    return np.stack([rows[keep], nearest[keep]], axis=1)


def inlier_matches(
    query: LocalFeatures,
    candidate: LocalFeatures,
    enough: int = MIN_MATCHES,
    ratio: float = RATIO,
    threshold_px: float = RANSAC_THRESHOLD_PX,
) -> np.ndarray:
    """(I, 2) int64 rows (query keypoint, candidate keypoint): the tentative matches consistent
    with one RANSAC homography; none, without RANSAC, when there are fewer tentative matches than
    ``enough`` (they could not make that many inliers)."""
    matches = tentative_matches(query, candidate, ratio)
    if len(matches) < max(enough, MIN_MATCHES):
        return matches[:0]
    src = query.keypoints[matches[:, 0]].reshape(-1, 1, 2)  # (M, 1, 2)
    dst = candidate.keypoints[matches[:, 1]].reshape(-1, 1, 2)  # (M, 1, 2)
    # USAC_FAST (RANSAC with local optimisation) finds as many inliers as classic RANSAC, at a
    # hundredth of its time on the candidates whose matches are mostly wrong
    _, mask = cv2.findHomography(src, dst, cv2.USAC_FAST, threshold_px, maxIters=RANSAC_ITERATIONS)
    return matches[:0] if mask is None else matches[mask.ravel().astype(bool)]


def count_inliers(
    query: LocalFeatures,
    candidate: LocalFeatures,
    enough: int = MIN_MATCHES,
    ratio: float = RATIO,
    threshold_px: float = RANSAC_THRESHOLD_PX,
) -> int:
    """How many ``inlier_matches`` there are."""
    return len(inlier_matches(query, candidate, enough, ratio, threshold_px))
