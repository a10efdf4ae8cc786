"""Geometric re-ranking over a real store (SQLite, FAISS, features found by the build) and real
pictures: a shopper's photo of a printed cover comes first, the rest keeps its global order."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from encoder import Preprocessor, load_encoder
from encoder.local_features import LocalFeatures, extract_features
from index import Product, ProductStore, SearchHit
from index.rerank import RerankOptions, answer_scores, rerank
from tests.conftest import build_store
from tests.encoder.covers import DEMO_PHOTO, cover, jpeg, shopper_photo

ROOT = Path(__file__).resolve().parents[2]
COVERS = 6


@pytest.fixture(scope="module")
def covers_store(tiny_encoder_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six printed covers and two demo garments, built with the tiny encoder (features at build)."""
    catalog = tmp_path_factory.mktemp("catalog")
    (catalog / "dvd").mkdir()
    (catalog / "shoes").mkdir()
    for i in range(COVERS):
        (catalog / "dvd" / f"DVD-{i}.jpg").write_bytes(jpeg(cover(i)))
    for name in ("SHOES-001", "SHOES-002"):
        (catalog / "shoes" / f"{name}.jpg").write_bytes(
            (ROOT / f"demo/catalog/shoes/{name}.jpg").read_bytes()
        )
    return build_store(catalog, tiny_encoder_path, tmp_path_factory.mktemp("store") / "s")


def global_hits(store: ProductStore, encoder_path: Path, photo: bytes) -> list[SearchHit]:
    encoder = load_encoder(encoder_path).eval()
    with torch.no_grad():
        vector = encoder.embed(Preprocessor(encoder.config)(photo)[None]).numpy()  # (1, D)
    return store.search(vector, k=store.count())[0]


def shopper_bytes(i: int) -> bytes:
    return jpeg(shopper_photo(cover(i), Image.open(ROOT / DEMO_PHOTO), seed=i), quality=80)


@pytest.mark.parametrize(("wanted", "reverse"), [(1, False), (5, False), (3, True)])
def test_the_photographed_cover_comes_first(
    covers_store: Path, tiny_encoder_path: Path, wanted: int, reverse: bool
) -> None:
    """The tiny random encoder puts the cover third or fourth; reversed, further down."""
    with ProductStore(covers_store) as store:
        photo = shopper_bytes(wanted)
        hits = global_hits(store, tiny_encoder_path, photo)[:: -1 if reverse else 1]
        assert [h.product.sku for h in hits].index(f"DVD-{wanted}") >= 2  # far from first
        done = rerank(hits, extract_features(photo), store.local_features, RerankOptions(k=len(hits)))
        top = done.hits[0]
        assert top.product.sku == f"DVD-{wanted}" and top.verified and top.inliers is not None
        assert top.inliers >= 15 and done.verified == len(hits)
        assert sum(h.verified for h in done.hits) == 1, [(h.product.sku, h.inliers) for h in done.hits]
        rest = [h.product.id for h in hits if h.product.sku != f"DVD-{wanted}"]
        assert [h.product.id for h in done.hits[1:]] == rest  # the others in their global order
        scores = answer_scores(done.hits)
        assert scores[0] >= 1 - 1 / top.inliers and scores[1:] == [h.score for h in done.hits[1:]]
        assert reverse or scores == sorted(scores, reverse=True)  # still falling down the list


def test_the_global_order_stays_when_nothing_matches(covers_store: Path, tiny_encoder_path: Path) -> None:
    with ProductStore(covers_store) as store:
        photo = (ROOT / "demo/catalog/shoes/SHOES-004.jpg").read_bytes()  # not in this catalog
        hits = global_hits(store, tiny_encoder_path, photo)
        done = rerank(hits, extract_features(photo), store.local_features, RerankOptions(k=len(hits)))
        assert [h.product.id for h in done.hits] == [h.product.id for h in hits]
        assert not any(h.verified for h in done.hits) and done.verified == len(hits)
        assert all(h.inliers is not None and h.inliers < 15 for h in done.hits)
        assert answer_scores(done.hits) == [h.score for h in hits]


class StepClock:
    """A CPU clock that advances ``step`` seconds each time it is read."""

    def __init__(self, step: float) -> None:
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def test_the_budget_stops_verification(covers_store: Path, tiny_encoder_path: Path) -> None:
    with ProductStore(covers_store) as store:
        photo = shopper_bytes(2)
        hits = global_hits(store, tiny_encoder_path, photo)
        query = extract_features(photo)
        # read before each candidate: 10 ms, 20 ms, 30 ms since the start; a 25 ms budget allows two
        done = rerank(hits, query, store.local_features, RerankOptions(budget_ms=25), StepClock(0.010))
        assert done.verified == 2
        assert [h.inliers is not None for h in done.hits].count(True) == 2
        checked = {h.product.id for h in done.hits if h.inliers is not None}
        assert checked == {h.product.id for h in hits[:2]}  # the first two of the global order
        unverified = [h.product.id for h in done.hits if not h.verified]
        assert unverified == [h.product.id for h in hits if h.product.id in unverified]
        assert rerank(hits, query, store.local_features, RerankOptions(budget_ms=0)).verified == 0


def test_k_limits_the_candidates_and_a_match_beyond_it_stays(
    covers_store: Path, tiny_encoder_path: Path
) -> None:
    with ProductStore(covers_store) as store:
        photo = shopper_bytes(3)
        hits = global_hits(store, tiny_encoder_path, photo)
        place = next(i for i, h in enumerate(hits) if h.product.sku == "DVD-3")
        done = rerank(hits, extract_features(photo), store.local_features, RerankOptions(k=place or 1))
        assert done.verified == (place or 1)
        if place:  # out of reach: nothing moves
            assert [h.product.id for h in done.hits] == [h.product.id for h in hits]


def hit(i: int, score: float) -> SearchHit:
    product = Product(i, f"P{i}", f"product {i}", None, None, {}, "", "")
    return SearchHit(product, score, image_id=100 + i)


def test_more_inliers_first_and_photos_without_features_skipped() -> None:
    original = cover(20)
    half = np.asarray(original).copy()
    half[:, 200:] = np.asarray(cover(21))[:, 200:]  # the same cover with half of it replaced
    photo = extract_features(jpeg(shopper_photo(original, cover(22))))
    stored = {
        101: extract_features(jpeg(cover(23))),
        102: extract_features(jpeg(Image.fromarray(half))),
        103: extract_features(jpeg(original)),
        # 104: no features (a store built before them): skipped, never verified
    }
    asked: list[list[int]] = []

    def load(ids: list[int]) -> dict[int, LocalFeatures]:
        asked.append(ids)
        return {i: stored[i] for i in ids if i in stored}

    hits = [hit(4, 0.9), hit(1, 0.8), hit(2, 0.7), hit(3, 0.6), hit(5, 0.5)]
    done = rerank(hits, photo, load, RerankOptions(k=4))
    order = [h.product.id for h in done.hits]
    assert order == [3, 2, 4, 1, 5]  # most inliers first, then the global order
    assert done.hits[0].inliers > done.hits[1].inliers >= 15  # type: ignore[operator]
    assert done.verified == 3 and done.hits[2].inliers is None and done.hits[4].inliers is None
    assert sorted(i for ids in asked for i in ids) == [101, 102, 103, 104]  # k=4: P5 never read
