"""Local features and geometric verification on pictures the tests make (and one demo photo)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from encoder import ImageDecodeError
from encoder.geometric import count_inliers, tentative_matches
from encoder.local_features import (
    MAX_KEYPOINTS,
    MAX_SIDE,
    LocalFeatures,
    extract_features,
    features_of_image,
    grey_for_features,
)
from encoder.preprocess import Crop
from tests.encoder.covers import DEMO_PHOTO, cover, jpeg, shopper_photo

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def background() -> Image.Image:
    return Image.open(ROOT / DEMO_PHOTO).convert("RGB")


def test_opencv_sift_descriptors_are_bytes() -> None:
    """Why uint8 storage loses nothing: OpenCV rounds every SIFT value to a whole number 0..255."""
    grey = grey_for_features(cover(1))
    _, raw = cv2.SIFT.create(nfeatures=MAX_KEYPOINTS).detectAndCompute(grey, None)
    assert raw.dtype == np.float32 and len(raw) > 100
    assert np.array_equal(raw, np.rint(raw)) and raw.min() >= 0 and raw.max() <= 255


def test_round_trip_through_bytes() -> None:
    features = extract_features(jpeg(cover(2)))
    assert 100 < features.count <= MAX_KEYPOINTS
    blob = features.to_bytes()
    assert len(blob) == 8 + 136 * features.count
    back = LocalFeatures.from_bytes(blob)
    assert np.array_equal(back.keypoints, features.keypoints)
    assert np.array_equal(back.descriptors, features.descriptors)
    assert back.descriptors.dtype == np.uint8 and back.keypoints.dtype == np.float32


FOREIGN = [b"", b"LF01", b"XXXX\x01\x00\x00\x00" + bytes(136), b"LF01\x02\x00\x00\x00"]


@pytest.mark.parametrize("blob", FOREIGN)
def test_foreign_bytes_are_refused(blob: bytes) -> None:
    with pytest.raises(ValueError):
        LocalFeatures.from_bytes(blob)


def test_keypoints_are_found_on_the_image_scaled_to_max_side() -> None:
    big = cover(3, size=(1600, 1200))
    features = extract_features(jpeg(big))
    assert features.keypoints[:, 0].max() < MAX_SIDE and features.keypoints[:, 1].max() < MAX_SIDE * 0.75
    assert grey_for_features(big).shape == (MAX_SIDE * 3 // 4, MAX_SIDE)
    assert grey_for_features(cover(3, size=(320, 240))).shape == (240, 320)  # never scaled up


def test_strongest_keypoints_come_first() -> None:
    grey = grey_for_features(cover(4))
    found = cv2.SIFT.create(nfeatures=MAX_KEYPOINTS).detect(grey, None)
    features = features_of_image(cover(4))
    strongest = max(found, key=lambda k: k.response)
    assert np.allclose(features.keypoints[0], strongest.pt)


def test_crop_keeps_only_the_marked_region() -> None:
    whole = extract_features(jpeg(cover(5)))
    left = extract_features(jpeg(cover(5)), Crop(0.0, 0.0, 0.5, 1.0))
    assert left.count < whole.count or left.keypoints[:, 0].max() < 400 * 0.5 + 1


def test_undecodable_bytes_raise_the_decode_error() -> None:
    with pytest.raises(ImageDecodeError):
        extract_features(b"not an image at all")


def test_a_shopper_photo_of_a_cover_verifies(background: Image.Image) -> None:
    product = cover(6)
    photo = extract_features(jpeg(shopper_photo(product, background, seed=6), quality=80))
    stored = extract_features(jpeg(product))
    assert count_inliers(photo, stored) >= 2 * 15  # twice the minimum of a verified match (300 keypoints)


def test_unrelated_pictures_do_not_verify(background: Image.Image) -> None:
    photo = extract_features(jpeg(shopper_photo(cover(7), background, seed=7)))
    others = [extract_features(jpeg(cover(seed))) for seed in (8, 9, 10)]
    others.append(extract_features((ROOT / "demo/catalog/shoes/SHOES-004.jpg").read_bytes()))
    assert count_inliers(photo, extract_features((ROOT / DEMO_PHOTO).read_bytes())) >= 12  # its background
    assert max(count_inliers(photo, o) for o in others) < 12


def test_tentative_matches_agree_with_a_brute_force_ratio_test() -> None:
    rng = np.random.default_rng(0)
    q = LocalFeatures(rng.random((30, 2), np.float32), rng.integers(0, 256, (30, 128)).astype(np.uint8))
    c_desc = q.descriptors.copy()
    c_desc[:10] = rng.integers(0, 256, (10, 128))  # the first ten lose their twin
    c = LocalFeatures(rng.random((30, 2), np.float32), c_desc[rng.permutation(30)])
    got = {tuple(m) for m in tentative_matches(q, c).tolist()}
    best: dict[int, tuple[float, int]] = {}  # candidate keypoint -> (distance, query keypoint)
    for i, d in enumerate(q.descriptors.astype(np.float64)):
        dist = np.linalg.norm(c.descriptors.astype(np.float64) - d, axis=1)
        first, second = np.argsort(dist)[:2]
        if dist[first] < 0.8 * dist[second] and dist[first] < best.get(int(first), (np.inf, -1))[0]:
            best[int(first)] = (dist[first], i)
    assert got == {(i, j) for j, (_, i) in best.items()} and len(got) >= 20


def test_many_query_keypoints_on_one_candidate_keypoint_count_once() -> None:
    """A candidate keypoint chosen by many query keypoints is one match: else a homography that
    collapses them all onto it makes them all "inliers"."""
    rng = np.random.default_rng(1)
    one = rng.integers(0, 256, (1, 128)).astype(np.uint8)
    q = LocalFeatures(rng.uniform(0, 400, (40, 2)).astype(np.float32), np.repeat(one, 40, axis=0))
    c_desc = np.concatenate([one, rng.integers(0, 256, (30, 128)).astype(np.uint8)])
    c = LocalFeatures(rng.uniform(0, 400, (31, 2)).astype(np.float32), c_desc)
    assert len(tentative_matches(q, c)) == 1
    assert count_inliers(q, c) == 0


def test_too_few_matches_are_not_verified() -> None:
    empty = LocalFeatures(np.zeros((0, 2), np.float32), np.zeros((0, 128), np.uint8))
    assert count_inliers(empty, extract_features(jpeg(cover(11)))) == 0
    features = extract_features(jpeg(cover(11)))
    assert count_inliers(features, features, enough=features.count + 1) == 0  # could not reach it
    assert count_inliers(features, features) >= features.count * 0.9
