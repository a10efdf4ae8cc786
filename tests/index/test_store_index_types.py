"""Index types and rebuilds, tombstones and compaction, and near-duplicate detection."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from index import NearDuplicate, NearDuplicateError, NewProduct, ProductStore
from tests.conftest import image_bytes
from tests.index.conftest import DIM, FP, unit

N_PRODUCTS = 320  # enough to train IVF16,PQ4 (256 PQ centroids)


def clustered(rng: np.random.Generator, n: int, clusters: int = 16, spread: float = 0.15) -> np.ndarray:
    centres = unit(rng, clusters)
    x = centres[rng.integers(clusters, size=n)] + spread * rng.normal(size=(n, DIM)).astype(np.float32)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def new_product(i: int, vector: np.ndarray, sku: str | None = None) -> NewProduct:
    return NewProduct(
        sku or f"SKU-{i}", f"Product {i}", "c", 1.0, {}, (image_bytes(i, size=(24, 24)),), vector
    )


@dataclass
class Template:
    directory: Path
    vectors: np.ndarray  # row i: the only image of product SKU-i


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    """320 single-image products on clustered data, in a closed Flat store copied by each test."""
    directory = tmp_path_factory.mktemp("index-types") / "template"
    vectors = clustered(np.random.default_rng(3), N_PRODUCTS)
    with ProductStore(directory, FP, DIM) as s:
        s.add_products([new_product(i, vectors[i : i + 1]) for i in range(N_PRODUCTS)])
    return Template(directory, vectors)


def open_copy(template: Template, tmp_path: Path, **kw) -> ProductStore:
    target = tmp_path / "store"
    if not target.exists():
        shutil.copytree(template.directory, target)
    return ProductStore(target, **kw)


@pytest.fixture()
def store(template: Template, tmp_path: Path) -> Iterator[ProductStore]:
    with open_copy(template, tmp_path) as s:
        yield s


def ids_by_sku(store: ProductStore) -> dict[str, int]:
    return {p.sku: p.id for p in store.list_products(limit=10_000)}


def assert_each_product_finds_itself(store: ProductStore, vectors: np.ndarray, k: int = 5) -> None:
    """Every live product SKU-i is among the top-k hits for its own vector vectors[i]."""
    live = ids_by_sku(store)
    rows = [i for i in range(len(vectors)) if f"SKU-{i}" in live]
    for i, hits in zip(rows, store.search(vectors[rows], k=k), strict=True):
        assert live[f"SKU-{i}"] in [h.product.id for h in hits], f"SKU-{i} not found by its own vector"


def returned_ids(store: ProductStore, queries: np.ndarray, k: int = 20) -> set[int]:
    return {h.product.id for row in store.search(queries, k=k) for h in row}


def image_files(store: ProductStore) -> set[Path]:
    return {p for p in (store.directory / ProductStore.IMAGES_DIR).rglob("*") if p.is_file()}


def remove_skus(store: ProductStore, indices: range | list[int]) -> list[int]:
    """Remove products SKU-i; return their ids."""
    ids = ids_by_sku(store)
    removed = [ids[f"SKU-{i}"] for i in indices]
    for product_id in removed:
        assert store.remove_product(product_id)
    return removed


# ---------------------------------------------------------------------- rebuild
@pytest.mark.parametrize(
    ("requested", "expected"),
    [("HNSW32", "HNSW32"), ("IVF16,Flat", "IVF16,Flat"), ("IVF16,PQ4", "IVF16,PQ4,RFlat")],
)
def test_rebuild_to_an_index_type(template: Template, tmp_path: Path, requested: str, expected: str) -> None:
    with open_copy(template, tmp_path) as store:
        report = store.rebuild(requested)
        assert (report.index_type, report.vectors) == (expected, N_PRODUCTS)
        assert report.tuning.recall >= 0.95 and report.tuning.knobs
        assert store.index_type == expected and store.index_info()["type"] == expected
        assert store.vector_count() == N_PRODUCTS
        assert_each_product_finds_itself(store, template.vectors)
        description = store.index_info()["description"]
    with open_copy(template, tmp_path) as reopened:
        assert reopened.index_type == expected
        assert reopened.index_info()["description"] == description
        assert_each_product_finds_itself(reopened, template.vectors)


def test_rebuild_auto_picks_flat_for_a_small_store(store: ProductStore, template: Template) -> None:
    store.rebuild("HNSW32")
    report = store.rebuild("auto")
    assert report.index_type == "Flat" == store.index_type
    assert report.tuning.recall == 1.0 and report.tuning.knobs == {}
    assert_each_product_finds_itself(store, template.vectors, k=1)


@pytest.mark.parametrize("index_type", ["LSH", "HNSW", "IVF16", "IVF16,PQ4,Refine(Flat)", "PQ4", ""])
def test_rebuild_refuses_an_unknown_index_type(store: ProductStore, index_type: str) -> None:
    with pytest.raises(ValueError, match="unknown index type"):
        store.rebuild(index_type)
    assert store.index_type == "Flat"


def test_rebuild_ivf_with_more_lists_than_vectors_keeps_the_old_index(
    store: ProductStore, template: Template
) -> None:
    store.rebuild("HNSW32")
    snapshot = (store.directory / ProductStore.SNAPSHOT_NAME).read_bytes()
    with pytest.raises(ValueError, match="IVF lists"):
        store.rebuild("IVF1024,Flat")
    assert store.index_type == "HNSW32" == store.index_info()["type"]
    assert (store.directory / ProductStore.SNAPSHOT_NAME).read_bytes() == snapshot
    assert_each_product_finds_itself(store, template.vectors)


def test_rebuild_ivf_pq_with_too_few_vectors_keeps_the_old_index(tmp_path: Path) -> None:
    vectors = clustered(np.random.default_rng(4), 100)
    with ProductStore(tmp_path / "s", FP, DIM) as store:
        store.add_products([new_product(i, vectors[i : i + 1]) for i in range(100)])
        with pytest.raises(ValueError):  # PQ4 needs 256 training vectors for its 8-bit codebooks
            store.rebuild("IVF16,PQ4")
        assert store.index_type == "Flat" == store.index_info()["type"]
        assert_each_product_finds_itself(store, vectors, k=1)


def _lose_the_snapshot_of(directory: Path, index_type: str, keep: int) -> None:
    """A store of ``index_type`` left with ``keep`` images and no usable snapshot: what a real rebuild,
    many removals (below the compaction threshold) and a lost or corrupt snapshot leave behind."""
    with ProductStore(directory) as store:
        remove_skus(store, range(keep, N_PRODUCTS))
        store.set_meta("index_type", index_type)
    (directory / ProductStore.SNAPSHOT_NAME).unlink()


def test_reopening_an_ivf_store_too_small_to_train_falls_back_to_flat(
    template: Template, tmp_path: Path
) -> None:
    open_copy(template, tmp_path).close()
    _lose_the_snapshot_of(tmp_path / "store", "IVF16,Flat", keep=10)
    with ProductStore(tmp_path / "store") as store:
        assert store.index_info()["type"] == "Flat" and store.vector_count() == 10
        assert_each_product_finds_itself(store, template.vectors[:10], k=1)


def test_the_flat_fallback_keeps_its_type_after_another_reopen(template: Template, tmp_path: Path) -> None:
    open_copy(template, tmp_path).close()
    _lose_the_snapshot_of(tmp_path / "store", "IVF16,Flat", keep=10)
    ProductStore(tmp_path / "store").close()  # falls back to Flat and snapshots it
    with ProductStore(tmp_path / "store") as store:
        assert "IndexFlat" in store.index_info()["description"]  # what it holds
        assert store.index_info()["type"] == "Flat"  # what it claims to hold


def test_reopening_an_ivf_pq_store_too_small_to_train_falls_back_to_flat(
    template: Template, tmp_path: Path
) -> None:
    open_copy(template, tmp_path).close()
    _lose_the_snapshot_of(tmp_path / "store", "IVF16,PQ4,RFlat", keep=100)
    with ProductStore(tmp_path / "store") as store:
        assert store.index_info()["type"] == "Flat" and store.vector_count() == 100
        assert_each_product_finds_itself(store, template.vectors[:100], k=1)


# ---------------------------------------------------------------------- tombstones
@pytest.fixture()
def tombstoned(template: Template, tmp_path: Path) -> Iterator[ProductStore]:
    with open_copy(template, tmp_path, force_tombstones=True) as s:
        yield s


def test_removed_products_are_tombstones_never_returned(tombstoned: ProductStore, template: Template) -> None:
    removed = remove_skus(tombstoned, range(0, 60, 2))
    info = tombstoned.index_info()
    assert (info["vectors"], info["tombstones"]) == (N_PRODUCTS, 30)
    assert tombstoned.vector_count() == tombstoned.image_count() == N_PRODUCTS - 30
    assert not set(removed) & returned_ids(tombstoned, template.vectors[0:60:2])
    _, image_ids = tombstoned.nearest_images(template.vectors[0:60:2], N_PRODUCTS)
    held, tombstones = tombstoned.vector_ids()
    assert not {int(i) for i in image_ids.flat} & tombstones and len(held) == N_PRODUCTS
    assert_each_product_finds_itself(tombstoned, template.vectors, k=1)


def test_an_hnsw_index_keeps_tombstones_without_forcing(store: ProductStore, template: Template) -> None:
    store.rebuild("HNSW32")
    removed = remove_skus(store, range(10))
    assert store.index_info()["tombstones"] == 10
    assert not set(removed) & returned_ids(store, template.vectors[:10])


@pytest.mark.parametrize("shutdown", ["close", "crash"])
def test_tombstones_survive_reopening(template: Template, tmp_path: Path, shutdown: str) -> None:
    store = open_copy(template, tmp_path, force_tombstones=True)
    store.snapshot()
    removed = remove_skus(store, range(0, 90, 3))
    queries = template.vectors[:90]
    before = [[(h.product.id, h.image_id) for h in row] for row in store.search(queries, k=10)]
    if shutdown == "close":
        store.close()  # a final snapshot holding the tombstones
    else:
        store.db.close()  # the snapshot predates the removals: reopening replays them

    with open_copy(template, tmp_path, force_tombstones=True) as reopened:
        info = reopened.index_info()
        assert (info["vectors"], info["tombstones"]) == (N_PRODUCTS, 30)
        assert reopened.vector_count() == N_PRODUCTS - 30
        assert [[(h.product.id, h.image_id) for h in row] for row in reopened.search(queries, k=10)] == before
        assert not set(removed) & returned_ids(reopened, queries)


def test_tombstones_are_compacted_at_the_threshold(tombstoned: ProductStore, template: Template) -> None:
    threshold = max(256, N_PRODUCTS // 4)
    removed = remove_skus(tombstoned, range(threshold - 1))
    assert tombstoned.index_info()["tombstones"] == threshold - 1
    removed += remove_skus(tombstoned, [threshold - 1])

    info = tombstoned.index_info()
    assert (info["tombstones"], info["vectors"]) == (0, N_PRODUCTS - threshold)
    assert tombstoned.index_type == "Flat"
    assert not set(removed) & returned_ids(tombstoned, template.vectors[:threshold], k=N_PRODUCTS)
    assert_each_product_finds_itself(tombstoned, template.vectors, k=1)


def test_a_compacted_index_survives_a_crash(template: Template, tmp_path: Path) -> None:
    store = open_copy(template, tmp_path, force_tombstones=True)
    remove_skus(store, range(256))
    assert store.index_info()["tombstones"] == 0
    store.db.close()
    with open_copy(template, tmp_path, force_tombstones=True) as reopened:
        assert reopened.index_info()["vectors"] == reopened.vector_count() == N_PRODUCTS - 256
        assert_each_product_finds_itself(reopened, template.vectors, k=1)


def test_a_compaction_that_cannot_rebuild_does_not_fail_the_removal(
    store: ProductStore, template: Template
) -> None:
    remove_skus(store, range(270, N_PRODUCTS))  # Flat removes in place: 270 vectors left
    store.rebuild("IVF16,Flat")  # IVF keeps tombstones
    ids = ids_by_sku(store)
    remove_skus(store, range(255))  # 15 live vectors: too few for 16 lists
    assert store.index_info()["tombstones"] == 255
    assert store.remove_product(ids["SKU-255"])  # the 256th tombstone triggers compaction
    assert store.get_product(ids["SKU-255"]) is None and store.vector_count() == 14


# ---------------------------------------------------------------------- near duplicates
def near(v: np.ndarray, rng: np.random.Generator, noise: float = 0.01) -> np.ndarray:
    x = v + noise * rng.normal(size=v.shape).astype(np.float32)
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


@dataclass
class DupSetup:
    store: ProductStore
    vectors: np.ndarray  # unrelated unit vectors; rows 0-1 are the images of SKU-A
    rng: np.random.Generator


def dup_store(tmp_path: Path, policy: str) -> DupSetup:
    rng = np.random.default_rng(9)
    vectors = unit(rng, 20)
    store = ProductStore(tmp_path / policy, FP, DIM, duplicate_policy=policy, duplicate_threshold=0.97)
    store.add_product(dup_product("A", vectors[0:2], seed=0))
    return DupSetup(store, vectors, rng)


def dup_product(name: str, vectors: np.ndarray, seed: int) -> NewProduct:
    images = tuple(image_bytes(seed + j, size=(24, 24)) for j in range(len(vectors)))
    return NewProduct(f"SKU-{name}", name, None, None, {}, images, vectors)


@pytest.fixture()
def report(tmp_path: Path) -> Iterator[DupSetup]:
    setup = dup_store(tmp_path, "report")
    yield setup
    setup.store.close()


@pytest.fixture()
def refuse(tmp_path: Path) -> Iterator[DupSetup]:
    setup = dup_store(tmp_path, "refuse")
    yield setup
    setup.store.close()


@pytest.fixture()
def off(tmp_path: Path) -> Iterator[DupSetup]:
    setup = dup_store(tmp_path, "off")
    yield setup
    setup.store.close()


def test_a_near_duplicate_of_a_stored_product_is_reported(report: DupSetup) -> None:
    a = report.store.get_by_sku("SKU-A")
    assert a is not None
    copy = near(report.vectors[1], report.rng)
    result = report.store.add_products([dup_product("B", np.stack([report.vectors[5], copy]), seed=100)])
    assert result.near_duplicates == [
        NearDuplicate(
            "SKU-B", 1, a.id, "SKU-A", a.images[1].id, pytest.approx(float(copy @ report.vectors[1]))
        )
    ]
    assert result.near_duplicates[0].score >= 0.97
    assert report.store.get_by_sku("SKU-B") is not None  # reported, still added


def test_near_duplicates_within_one_batch_are_reported(report: DupSetup) -> None:
    first = report.vectors[6]
    copy = near(first, report.rng)
    result = report.store.add_products(
        [dup_product("C", first[None], seed=200), dup_product("D", copy[None], seed=300)]
    )
    assert result.near_duplicates == [
        NearDuplicate("SKU-D", 0, None, "SKU-C", None, pytest.approx(float(first @ copy), abs=1e-5))
    ]
    assert report.store.count() == 3


def test_an_image_below_the_threshold_is_not_reported(report: DupSetup) -> None:
    far = near(report.vectors[0], report.rng, noise=0.2)
    assert float(far @ report.vectors[0]) < 0.97
    assert report.store.add_products([dup_product("B", far[None], seed=100)]).near_duplicates == []


@pytest.mark.parametrize("where", ["stored", "batch"])
def test_refuse_raises_and_writes_nothing(refuse: DupSetup, where: str) -> None:
    store, v = refuse.store, refuse.vectors
    batch = [dup_product("B", v[7:8], seed=100)]
    batch.append(dup_product("C", near(v[0 if where == "stored" else 7], refuse.rng)[None], seed=200))
    before = (store.count(), store.image_count(), store.vector_count(), store.vector_ids())
    with pytest.raises(NearDuplicateError) as err:
        store.add_products(batch)
    assert [(d.sku, d.other_sku) for d in err.value.duplicates] == [
        ("SKU-C", "SKU-A" if where == "stored" else "SKU-B")
    ]
    assert (store.count(), store.image_count(), store.vector_count(), store.vector_ids()) == before
    assert store.get_by_sku("SKU-B") is None and store.get_by_sku("SKU-C") is None


def test_refuse_leaves_no_new_image_files(refuse: DupSetup) -> None:
    before = image_files(refuse.store)
    with pytest.raises(NearDuplicateError):
        refuse.store.add_products([dup_product("B", near(refuse.vectors[0], refuse.rng)[None], seed=100)])
    assert image_files(refuse.store) == before


def test_refuse_applies_to_add_images(refuse: DupSetup) -> None:
    b = refuse.store.add_product(dup_product("B", refuse.vectors[8:9], seed=100))
    with pytest.raises(NearDuplicateError):
        refuse.store.add_images(
            b.id, [image_bytes(150, size=(24, 24))], near(refuse.vectors[0], refuse.rng)[None]
        )
    assert refuse.store.get_product(b.id) == b and refuse.store.vector_count() == 3


@pytest.mark.parametrize("where", ["stored", "batch"])
def test_policy_off_reports_nothing(off: DupSetup, where: str) -> None:
    v = off.vectors
    batch = [dup_product("B", v[7:8], seed=100)]
    batch.append(dup_product("C", near(v[0 if where == "stored" else 7], off.rng)[None], seed=200))
    assert off.store.add_products(batch).near_duplicates == []
    assert off.store.count() == 3


def test_add_images_does_not_report_the_product_itself(report: DupSetup) -> None:
    a = report.store.get_by_sku("SKU-A")
    assert a is not None
    result = report.store.add_images(
        a.id, [image_bytes(50, size=(24, 24))], near(report.vectors[0], report.rng)[None]
    )
    assert result is not None and result[1] == [] and len(result[0].images) == 3


def test_add_images_reports_another_product(report: DupSetup) -> None:
    a = report.store.get_by_sku("SKU-A")
    b = report.store.add_product(dup_product("B", report.vectors[8:9], seed=100))
    assert a is not None
    result = report.store.add_images(
        b.id, [image_bytes(150, size=(24, 24))], near(report.vectors[0], report.rng)[None]
    )
    assert result is not None
    assert [(d.sku, d.image_index, d.other_product_id, d.other_image_id) for d in result[1]] == [
        ("SKU-B", 0, a.id, a.images[0].id)
    ]
