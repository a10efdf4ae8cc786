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
    candidate keypoint in one row at most (``ratio_matches`` on the SIFT descriptors)."""
    q, c = query.descriptors.astype(np.float32), candidate.descriptors.astype(np.float32)
    return ratio_matches(q, c, ratio)


def ratio_matches(query: np.ndarray, candidate: np.ndarray, ratio: float = RATIO) -> np.ndarray:
    """query (Q, D), candidate (C, D) float32 descriptors -> (M, 2) int64 rows (query row,
    candidate row) passing the ratio test, each candidate row in one match at most.

    The distances come from one matrix product in OpenCV (``cv2.gemm``): numpy's multi-threaded
    BLAS spends ten times the CPU on matrices this small, its threads spinning while they wait.
    """
    if len(query) == 0 or len(candidate) < 2:
        return np.zeros((0, 2), np.int64)
    q = np.ascontiguousarray(query, np.float32)  # (Q, D)
    c = np.ascontiguousarray(candidate, np.float32)  # (C, D)
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


def homography_inliers(
    src: np.ndarray, dst: np.ndarray, enough: int = MIN_MATCHES, threshold_px: float = RANSAC_THRESHOLD_PX
) -> np.ndarray:
    """src, dst (M, 2) float32 matched points -> (M,) bool: the matches one RANSAC homography
    keeps; all False, without RANSAC, when fewer than ``enough`` (or four) are given.

    A homography that folds the plane (negative determinant of its 2x2 part), squeezes it to
    almost nothing or blows it up (determinant outside [1e-3, 1e3]), or maps the query's
    matched region to a quad that is not convex is no view of a flat surface: all False."""
    none = np.zeros(len(src), bool)
    if len(src) < max(enough, MIN_MATCHES):
        return none
    # USAC_FAST (RANSAC with local optimisation) finds as many inliers as classic RANSAC, at a
    # hundredth of its time on the candidates whose matches are mostly wrong
    h, mask = cv2.findHomography(
        src.reshape(-1, 1, 2), dst.reshape(-1, 1, 2), cv2.USAC_FAST, threshold_px, maxIters=RANSAC_ITERATIONS
    )
    if mask is None or h is None or not plausible_homography(h, src[mask.ravel().astype(bool)]):
        return none
    return mask.ravel().astype(bool)


def plausible_homography(h: np.ndarray, points: np.ndarray) -> bool:
    """Whether ``h`` (3, 3) can be a camera's view of a flat surface around ``points`` (N, 2):
    orientation kept, scale change within 1000x, and the box of the points mapped to a convex quad."""
    det = float(h[0, 0] * h[1, 1] - h[0, 1] * h[1, 0])  # written out: LAPACK's threads cost more
    if not 1e-3 < det < 1e3 or len(points) == 0:
        return False
    (x0, y0), (x1, y1) = points.min(0), points.max(0)
    box = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32).reshape(-1, 1, 2)
    quad = cv2.perspectiveTransform(box, h).reshape(4, 2)
    edges = np.roll(quad, -1, axis=0) - quad  # (4, 2)
    following = np.roll(edges, -1, axis=0)  # (4, 2): the edge after each
    turns = edges[:, 0] * following[:, 1] - edges[:, 1] * following[:, 0]
    return bool(np.all(turns > 0) or np.all(turns < 0))


def inlier_matches(
    query: LocalFeatures,
    candidate: LocalFeatures,
    enough: int = MIN_MATCHES,
    ratio: float = RATIO,
    threshold_px: float = RANSAC_THRESHOLD_PX,
) -> np.ndarray:
    """(I, 2) int64 rows (query keypoint, candidate keypoint): ``verified_matches`` on the SIFT
    descriptors."""
    q, c = query.descriptors.astype(np.float32), candidate.descriptors.astype(np.float32)
    return verified_matches(query.keypoints, q, candidate.keypoints, c, enough, ratio, threshold_px)


def verified_matches(
    query_points: np.ndarray,
    query_descriptors: np.ndarray,
    candidate_points: np.ndarray,
    candidate_descriptors: np.ndarray,
    enough: int = MIN_MATCHES,
    ratio: float = RATIO,
    threshold_px: float = RANSAC_THRESHOLD_PX,
) -> np.ndarray:
    """points (Q, 2) / (C, 2) and descriptors (Q, D) / (C, D) -> (I, 2) int64 rows (query row,
    candidate row): the ratio-test matches consistent with one plausible RANSAC homography; none,
    without RANSAC, when there are fewer tentative matches than ``enough`` (they could not make
    that many inliers)."""
    matches = ratio_matches(query_descriptors, candidate_descriptors, ratio)
    if len(matches) < max(enough, MIN_MATCHES):
        return matches[:0]
    src = query_points[matches[:, 0]]  # (M, 2)
    dst = candidate_points[matches[:, 1]]  # (M, 2)
    return matches[homography_inliers(src, dst, enough, threshold_px)]


def count_inliers(
    query: LocalFeatures,
    candidate: LocalFeatures,
    enough: int = MIN_MATCHES,
    ratio: float = RATIO,
    threshold_px: float = RANSAC_THRESHOLD_PX,
) -> int:
    """How many ``inlier_matches`` there are."""
    return len(inlier_matches(query, candidate, enough, ratio, threshold_px))
