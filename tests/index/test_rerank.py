"""Geometric re-ranking over a real store (SQLite, FAISS, features found by the build) and real
pictures: a shopper's photo of a printed cover comes first, the rest keeps its global order."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from encoder import Preprocessor, load_encoder
from encoder.local_features import extract_features
from index import ProductStore, SearchFilter, SearchHit
from index.rerank import Reranked, RerankOptions, rerank
from tests.conftest import build_store
from tests.encoder.covers import DEMO_PHOTO, cover, jpeg, shopper_photo

ROOT = Path(__file__).resolve().parents[2]
COVERS = 6


@pytest.fixture(scope="module")
def covers_store(tiny_encoder_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six printed covers and two demo garments, built with the tiny encoder, local matching on."""
    catalog = tmp_path_factory.mktemp("catalog")
    (catalog / "dvd").mkdir()
    (catalog / "shoes").mkdir()
    for i in range(COVERS):
        (catalog / "dvd" / f"DVD-{i}.jpg").write_bytes(jpeg(cover(i)))
    for name in ("SHOES-001", "SHOES-002"):
        (catalog / "shoes" / f"{name}.jpg").write_bytes(
            (ROOT / f"demo/catalog/shoes/{name}.jpg").read_bytes()
        )
    return build_store(catalog, tiny_encoder_path, tmp_path_factory.mktemp("store") / "s", "--rerank", "on")


def query_vector(encoder_path: Path, photo: bytes) -> np.ndarray:
    encoder = load_encoder(encoder_path).eval()
    with torch.no_grad():
        return encoder.embed(Preprocessor(encoder.config)(photo)[None]).numpy()  # (1, D)


def global_hits(store: ProductStore, encoder_path: Path, photo: bytes) -> list[SearchHit]:
    return store.search(query_vector(encoder_path, photo), k=store.count())[0]


def run(
    store: ProductStore,
    hits: list[SearchHit],
    photo: bytes,
    options: RerankOptions,
    encoder_path: Path,
    clock: object = None,
) -> Reranked:
    vector = query_vector(encoder_path, photo)[0]
    extra = {"clock": clock} if clock is not None else {}
    return rerank(
        hits,
        extract_features(photo),
        store.local,
        store.local_features,
        lambda ids: store.image_hits(ids, vector),
        options,
        **extra,  # type: ignore[arg-type]
    )


def shopper_bytes(i: int) -> bytes:
    return jpeg(shopper_photo(cover(i), Image.open(ROOT / DEMO_PHOTO), seed=i), quality=80)


@pytest.mark.parametrize(("wanted", "reverse"), [(1, False), (5, False), (3, True)])
def test_the_photographed_cover_comes_first(
    covers_store: Path, tiny_encoder_path: Path, wanted: int, reverse: bool
) -> None:
    """The tiny random encoder puts the cover third or fourth; reversed, further down."""
    with ProductStore(covers_store) as store:
        assert store.local.ready and len(store.local) == store.image_count()
        photo = shopper_bytes(wanted)
        hits = global_hits(store, tiny_encoder_path, photo)[:: -1 if reverse else 1]
        assert [h.product.sku for h in hits].index(f"DVD-{wanted}") >= 2  # far from first
        done = run(store, hits, photo, RerankOptions(k=len(hits)), tiny_encoder_path)
        top = done.hits[0]
        assert top.product.sku == f"DVD-{wanted}" and top.verified and top.inliers is not None
        assert top.inliers >= 15
        assert sum(h.verified for h in done.hits) == 1, [(h.product.sku, h.inliers) for h in done.hits]
        rest = {h.product.id for h in hits if h.product.sku != f"DVD-{wanted}"}
        assert sorted(h.product.id for h in done.hits[1:]) == sorted(rest)  # each other product once
        assert top.score == next(h.score for h in hits if h.product.sku == f"DVD-{wanted}")  # its cosine


def test_the_local_channel_finds_a_cover_the_global_list_lacks(
    covers_store: Path, tiny_encoder_path: Path
) -> None:
    with ProductStore(covers_store) as store:
        photo = shopper_bytes(4)
        everything = global_hits(store, tiny_encoder_path, photo)
        hits = [h for h in everything if h.product.sku != "DVD-4"][:3]
        done = run(store, hits, photo, RerankOptions(), tiny_encoder_path)
        top = done.hits[0]
        assert top.product.sku == "DVD-4" and top.verified and done.local >= 1
        cosine = next(h.score for h in everything if h.product.sku == "DVD-4")
        assert top.score == pytest.approx(cosine, abs=1e-5)  # the cosine of the photo it matched
        assert {h.product.id for h in hits} <= {h.product.id for h in done.hits[1:]}


def test_candidates_only_the_local_index_named_obey_the_filter(
    covers_store: Path, tiny_encoder_path: Path
) -> None:
    with ProductStore(covers_store) as store:
        vector = query_vector(tiny_encoder_path, shopper_bytes(4))[0]
        products = store.list_products(limit=100)
        photos = [i.id for p in products for i in p.images]
        dvd = {i.id for p in products if p.sku.startswith("DVD") for i in p.images}
        hits = store.image_hits(photos, vector, SearchFilter(category="shoes"))
        assert {h.image_id for h in hits} == set(photos) - dvd and all(
            h.product.category == "shoes" for h in hits
        )
        assert {h.image_id for h in store.image_hits(photos, vector, SearchFilter(category="dvd"))} == dvd
        assert len(store.image_hits(photos, vector)) == len(photos)


def test_nothing_is_verified_when_nothing_matches(covers_store: Path, tiny_encoder_path: Path) -> None:
    with ProductStore(covers_store) as store:
        photo = (ROOT / "demo/catalog/shoes/SHOES-004.jpg").read_bytes()  # not in this catalog
        hits = global_hits(store, tiny_encoder_path, photo)
        done = run(store, hits, photo, RerankOptions(k=len(hits)), tiny_encoder_path)
        assert sorted(h.product.id for h in done.hits) == sorted(h.product.id for h in hits)
        assert not any(h.verified for h in done.hits)
        assert all(h.inliers is None or h.inliers < 15 for h in done.hits)
        cosine = {h.product.id: h.score for h in hits}
        assert all(h.score == cosine[h.product.id] for h in done.hits)  # scores stay cosines


class StepClock:
    """A CPU clock that advances ``step`` seconds each time it is read."""

    def __init__(self, step: float) -> None:
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def test_the_budget_and_a_decisive_match_stop_verification(
    covers_store: Path, tiny_encoder_path: Path
) -> None:
    with ProductStore(covers_store) as store:
        photo = shopper_bytes(2)
        hits = global_hits(store, tiny_encoder_path, photo)
        every = RerankOptions(k=len(hits), decisive_inliers=10_000)
        assert run(store, hits, photo, every, tiny_encoder_path).verified == len(hits)
        # read at the start and before each candidate, 10 ms apart: a 25 ms budget allows two
        capped = RerankOptions(k=len(hits), budget_ms=25, decisive_inliers=10_000)
        assert run(store, hits, photo, capped, tiny_encoder_path, StepClock(0.010)).verified == 2
        assert run(store, hits, photo, RerankOptions(budget_ms=0), tiny_encoder_path).verified == 0
        decisive = run(store, hits, photo, RerankOptions(k=len(hits), decisive_inliers=15), tiny_encoder_path)
        assert decisive.hits[0].product.sku == "DVD-2" and decisive.verified < len(hits)


def test_a_store_without_a_local_index_answers_the_global_list(
    tiny_encoder_path: Path, tmp_path: Path
) -> None:
    catalog = tmp_path / "catalog" / "dvd"
    catalog.mkdir(parents=True)
    for i in range(3):
        (catalog / f"DVD-{i}.jpg").write_bytes(jpeg(cover(i)))
    store_dir = build_store(catalog.parent, tiny_encoder_path, tmp_path / "s", "--rerank", "off")
    with ProductStore(store_dir) as store:
        assert not store.local.ready and store.features.count() == 0
        photo = shopper_bytes(1)
        hits = global_hits(store, tiny_encoder_path, photo)
        done = run(store, hits, photo, RerankOptions(), tiny_encoder_path)
        assert done.hits == hits and done.verified == 0


def test_options_of_a_store_from_before_the_local_index() -> None:
    old = RerankOptions.from_json('{"enabled": false, "k": 100, "budget_ms": 250, "min_inliers": 20}')
    assert old == RerankOptions(enabled=False, min_inliers=20)
    assert RerankOptions.from_json(RerankOptions(k=5, shortlist=7).to_json()) == RerankOptions(
        k=5, shortlist=7
    )
    with pytest.raises(ValueError, match="decisive_inliers"):
        RerankOptions(min_inliers=30, decisive_inliers=20)
