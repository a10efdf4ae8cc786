import threading
from pathlib import Path

import numpy as np
import pytest

from index import DuplicateSkuError, EncoderMismatchError, ProductStore, SearchFilter
from tests.conftest import image_bytes
from tests.index.conftest import DIM, FP, product, unit


def test_add_get_and_exact_search_match_numpy(store: ProductStore) -> None:
    rng = np.random.default_rng(0)
    vectors = unit(rng, 30)
    added = store.add_products([product(i, vectors[i : i + 1]) for i in range(30)]).products
    assert store.count() == 30 and store.vector_count() == 30
    got = store.get_product(added[3].id)
    assert got is not None and got.sku == "SKU-3" and got.attributes == {"colour": "red"} and got.price == 9.5
    assert store.image_file(got.images[0]).read_bytes() == image_bytes(30)

    queries = unit(rng, 5)
    hits = store.search(queries, k=7)
    exact = np.argsort(-(queries @ vectors.T), axis=1)[:, :7]
    for row, expected in zip(hits, exact, strict=True):
        assert [h.product.sku for h in row] == [f"SKU-{i}" for i in expected]
        assert row[0].score == pytest.approx(
            float(np.max(queries @ vectors.T, axis=1)[hits.index(row)]), abs=1e-5
        )


def test_duplicate_sku_is_refused_and_nothing_is_written(store: ProductStore) -> None:
    rng = np.random.default_rng(1)
    store.add_product(product(1, unit(rng, 1)))
    with pytest.raises(DuplicateSkuError):
        store.add_products([product(2, unit(rng, 1)), product(1, unit(rng, 1))])
    assert store.count() == 1 and store.vector_count() == 1 and store.get_by_sku("SKU-2") is None
    with pytest.raises(DuplicateSkuError):
        store.add_products([product(3, unit(rng, 1)), product(3, unit(rng, 1))])


def test_bad_embeddings_are_refused(store: ProductStore) -> None:
    with pytest.raises(ValueError, match="shape"):
        store.add_product(product(1, np.ones((1, DIM + 1), np.float32)))
    with pytest.raises(ValueError, match="normalised"):
        store.add_product(product(1, np.ones((1, DIM), np.float32)))
    assert store.count() == 0


def test_multi_image_products_collapse_to_their_best_image(store: ProductStore) -> None:
    rng = np.random.default_rng(2)
    v = unit(rng, 6)
    store.add_product(product(1, v[:4]))  # four images
    store.add_product(product(2, v[4:5]))
    store.add_product(product(3, v[5:6]))
    hits = store.search(v[2:3], k=3)[0]
    assert [h.product.sku for h in hits][0] == "SKU-1"
    assert len(hits) == 3 and len({h.product.id for h in hits}) == 3
    assert hits[0].image_id == store.get_by_sku("SKU-1").images[2].id


def test_remove_deletes_rows_and_vectors(store: ProductStore) -> None:
    rng = np.random.default_rng(3)
    v = unit(rng, 3)
    a, b, _ = store.add_products([product(i, v[i : i + 1]) for i in range(3)]).products
    assert store.remove_product(a.id) and not store.remove_product(a.id)
    assert store.get_product(a.id) is None and store.vector_count() == 2
    assert all(h.product.id != a.id for h in store.search(v[:1], k=3)[0])
    assert store.get_product(b.id) is not None


def test_restart_replays_changes_newer_than_the_snapshot(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    v = unit(rng, 6)
    store = ProductStore(tmp_path / "s", FP, DIM)
    ids = [p.id for p in store.add_products([product(i, v[i : i + 1]) for i in range(4)]).products]
    assert store.snapshot() > 0
    store.add_product(product(4, v[4:5]))  # after the snapshot
    store.remove_product(ids[0])
    store.db.close()  # a crash: no final snapshot

    reopened = ProductStore(tmp_path / "s", FP, DIM)
    assert reopened.vector_count() == 4
    assert reopened.search(v[4:5], k=1)[0][0].product.sku == "SKU-4"
    assert all(h.product.id != ids[0] for h in reopened.search(v[:1], k=5)[0])
    reopened.close()


def test_a_corrupt_snapshot_is_rebuilt_from_sqlite(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    v = unit(rng, 3)
    with ProductStore(tmp_path / "s", FP, DIM) as store:
        store.add_products([product(i, v[i : i + 1]) for i in range(3)])
    snap = tmp_path / "s" / ProductStore.SNAPSHOT_NAME
    snap.write_bytes(snap.read_bytes()[:-100])
    with ProductStore(tmp_path / "s", FP, DIM) as store:
        assert store.vector_count() == 3
        assert store.search(v[1:2], k=1)[0][0].product.sku == "SKU-1"


def test_another_encoder_is_refused_with_the_fix(tmp_path: Path) -> None:
    ProductStore(tmp_path / "s", FP, DIM).close()
    with pytest.raises(EncoderMismatchError, match="lookalike build"):
        ProductStore(tmp_path / "s", "0" * 64, DIM)
    with ProductStore(tmp_path / "s") as store:  # opening without an encoder takes the stored one
        assert store.fingerprint == FP and store.dim == DIM


def test_list_products_paginates_and_filters(store: ProductStore) -> None:
    rng = np.random.default_rng(6)
    store.add_products([product(i, unit(rng, 1), category="a" if i % 2 else "b") for i in range(7)])
    assert [p.sku for p in store.list_products(offset=2, limit=3)] == ["SKU-2", "SKU-3", "SKU-4"]
    assert {p.category for p in store.list_products(filter=SearchFilter(category="a"))} == {"a"}
    assert len(store.list_products(filter=SearchFilter(category="a"))) == 3


@pytest.mark.parametrize("index_type,force_tombstones", [("Flat", False), ("HNSW32", True)])
def test_concurrent_searches_while_adding_and_deleting(
    tmp_path: Path, index_type: str, force_tombstones: bool
) -> None:
    """8 threads search while 2 threads add and delete: no error, no deleted product, no lost add."""
    rng = np.random.default_rng(7)
    v = unit(rng, 80)
    store = ProductStore(tmp_path / "s", FP, DIM, force_tombstones=force_tombstones)
    store.add_products([product(i, v[i : i + 1]) for i in range(40)])
    store.rebuild(index_type)
    errors: list[BaseException] = []
    deleted: set[int] = set()
    added: dict[int, int] = {}  # product id -> row of v

    def searcher() -> None:
        try:
            for _ in range(30):
                gone = set(deleted)  # removals that completed before this search started
                for hit in store.search(v[:4], k=10)[0]:
                    assert hit.product.id not in gone, "a search returned a deleted product"
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    def writer(offset: int) -> None:
        try:
            for i in range(offset, offset + 20):
                added[store.add_product(product(i, v[i : i + 1])).id] = i
            for p in store.list_products(offset=0, limit=5):
                if store.remove_product(p.id):  # the other writer may have removed it first
                    deleted.add(p.id)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=searcher) for _ in range(8)] + [
        threading.Thread(target=writer, args=(40,)),
        threading.Thread(target=writer, args=(60,)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert store.count() == store.vector_count() == 80 - len(deleted)
    for product_id, row in added.items():
        if product_id not in deleted:
            assert store.search(v[row : row + 1], k=1)[0][0].product.id == product_id, "an add was lost"
    store.close()
