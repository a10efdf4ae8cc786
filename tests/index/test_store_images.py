"""ProductStore with several images per product: adding, replacing and removing images, metadata
updates, product removal, and what survives a close/reopen or a crash."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from index import DuplicateSkuError, LastImageError, NewProduct, Product, ProductStore
from tests.conftest import image_bytes
from tests.index.conftest import DIM, FP, unit

OLD_TIME = "2000-01-01T00:00:00+00:00"


def new_product(i: int, vectors: np.ndarray, seeds: list[int] | None = None, **kw) -> NewProduct:
    """Product ``i`` with one image per row of ``vectors`` (image bytes from ``seeds``)."""
    seeds = seeds if seeds is not None else [1000 * i + j for j in range(len(vectors))]
    return NewProduct(
        kw.get("sku", f"SKU-{i}"),
        kw.get("title", f"Product {i}"),
        kw.get("category", "shoes"),
        kw.get("price", 10.0 + i),
        kw.get("attributes", {"colour": "red"}),
        tuple(image_bytes(s) for s in seeds),
        vectors,
    )


@pytest.fixture()
def vectors() -> np.ndarray:
    return unit(np.random.default_rng(11), 40)


def with_images(
    store: ProductStore, product_id: int, seeds: list[int], vecs: np.ndarray, replace: bool = False
) -> Product:
    """add_images that must succeed and report no near-duplicates; the updated product."""
    result = store.add_images(product_id, [image_bytes(s) for s in seeds], vecs, replace=replace)
    assert result is not None and result[1] == []
    return result[0]


def image_files(store: ProductStore) -> set[Path]:
    return {p for p in (store.directory / ProductStore.IMAGES_DIR).rglob("*") if p.is_file()}


def all_returned_image_ids(store: ProductStore, queries: np.ndarray) -> set[int]:
    """Every image id FAISS returns for ``queries`` when asked for all of its vectors."""
    _, ids = store.nearest_images(queries, store.index_info()["vectors"])
    return {int(i) for i in ids.flat if i >= 0}


def summary(store: ProductStore, queries: np.ndarray, k: int = 10) -> list[list[tuple[int, int, float]]]:
    """Search results reduced to comparable (product id, image id, rounded score) triples."""
    return [[(h.product.id, h.image_id, round(h.score, 5)) for h in row] for row in store.search(queries, k)]


def make_old(store: ProductStore, product_id: int) -> None:
    """Backdate updated_at (timestamps have one-second resolution; the tests never sleep)."""
    store.db.query("UPDATE products SET updated_at = ? WHERE id = ?", (OLD_TIME, product_id))


# ---------------------------------------------------------------------- add_images
def test_add_images_appends_to_the_product(store: ProductStore, vectors: np.ndarray) -> None:
    p = store.add_product(new_product(1, vectors[0:1]))
    result = store.add_images(p.id, [image_bytes(501), image_bytes(502)], vectors[1:3])
    assert result is not None
    updated, duplicates = result
    assert duplicates == []
    assert len(updated.images) == 3 and updated.images[0] == p.images[0]
    assert store.image_count() == store.vector_count() == 3
    assert store.image_file(updated.images[2]).read_bytes() == image_bytes(502)


def test_search_finds_the_product_by_a_new_image_and_names_it(
    store: ProductStore, vectors: np.ndarray
) -> None:
    store.add_products([new_product(i, vectors[i : i + 1]) for i in range(5)])
    target = store.get_by_sku("SKU-2")
    assert target is not None
    updated = with_images(store, target.id, [777], vectors[20:21])
    hit = store.search(vectors[20:21], k=3)[0][0]
    assert hit.product.id == target.id
    assert hit.image_id == updated.images[-1].id != target.images[0].id
    assert hit.score == pytest.approx(1.0, abs=1e-5)


def test_add_images_to_an_unknown_product_returns_none(store: ProductStore, vectors: np.ndarray) -> None:
    store.add_product(new_product(1, vectors[0:1]))
    assert store.add_images(9999, [image_bytes(600)], vectors[1:2]) is None
    assert store.image_count() == store.vector_count() == 1


def test_add_images_to_an_unknown_product_leaves_no_file(store: ProductStore, vectors: np.ndarray) -> None:
    store.add_product(new_product(1, vectors[0:1]))
    before = image_files(store)
    assert store.add_images(9999, [image_bytes(600)], vectors[1:2]) is None
    assert image_files(store) == before


def test_replace_never_returns_the_old_vectors_again(store: ProductStore, vectors: np.ndarray) -> None:
    p = store.add_product(new_product(1, vectors[0:2]))
    store.add_product(new_product(2, vectors[2:3]))
    old_ids = {i.id for i in p.images}
    updated = with_images(store, p.id, [900], vectors[3:4], replace=True)
    assert len(updated.images) == 1 and updated.images[0].id not in old_ids
    assert store.image_count() == store.vector_count() == 2
    assert not old_ids & all_returned_image_ids(store, vectors[0:4])
    for row in store.search(vectors[0:2], k=5):
        assert {h.image_id for h in row} <= {updated.images[0].id, store.get_by_sku("SKU-2").images[0].id}


def test_replace_deletes_files_only_no_other_image_references(
    store: ProductStore, vectors: np.ndarray
) -> None:
    p = store.add_product(new_product(1, vectors[0:2], seeds=[100, 101]))
    other = store.add_product(new_product(2, vectors[2:3], seeds=[101]))  # shares the bytes of image 101
    own_file, shared_file = (store.image_file(i) for i in p.images)
    assert shared_file == store.image_file(other.images[0])
    updated = with_images(store, p.id, [102], vectors[3:4], replace=True)
    assert not own_file.exists()
    assert shared_file.read_bytes() == image_bytes(101)
    assert store.image_file(updated.images[0]).read_bytes() == image_bytes(102)


def test_replace_keeps_a_file_the_new_images_reuse(store: ProductStore, vectors: np.ndarray) -> None:
    p = store.add_product(new_product(1, vectors[0:2], seeds=[100, 101]))
    kept = store.image_file(p.images[1])
    updated = with_images(store, p.id, [101], vectors[5:6], replace=True)
    assert store.image_file(updated.images[0]) == kept
    assert kept.read_bytes() == image_bytes(101)
    assert not store.image_file(p.images[0]).exists()


# ---------------------------------------------------------------------- remove_image
def test_remove_image_drops_its_vector_and_file(store: ProductStore, vectors: np.ndarray) -> None:
    p = store.add_product(new_product(1, vectors[0:3]))
    store.add_product(new_product(2, vectors[3:4]))
    gone = p.images[1]
    updated = store.remove_image(p.id, gone.id)
    assert updated is not None and [i.id for i in updated.images] == [p.images[0].id, p.images[2].id]
    assert store.image_count() == store.vector_count() == 3
    assert gone.id not in all_returned_image_ids(store, vectors[0:4])
    assert all(h.image_id != gone.id for h in store.search(vectors[1:2], k=5)[0])
    assert not store.image_file(gone).exists()


def test_remove_image_keeps_a_file_another_product_uses(store: ProductStore, vectors: np.ndarray) -> None:
    p = store.add_product(new_product(1, vectors[0:2], seeds=[100, 101]))
    store.add_product(new_product(2, vectors[2:3], seeds=[101]))
    assert store.remove_image(p.id, p.images[1].id) is not None
    assert store.image_file(p.images[1]).read_bytes() == image_bytes(101)


def test_remove_image_refuses_to_remove_the_last_one(store: ProductStore, vectors: np.ndarray) -> None:
    p = store.add_product(new_product(1, vectors[0:1]))
    with pytest.raises(LastImageError, match="at least one image"):
        store.remove_image(p.id, p.images[0].id)
    assert store.get_product(p.id) == p
    assert store.vector_count() == 1 and store.image_file(p.images[0]).exists()
    assert store.search(vectors[0:1], k=1)[0][0].image_id == p.images[0].id


def test_remove_image_of_an_unknown_image_or_product_returns_none(
    store: ProductStore, vectors: np.ndarray
) -> None:
    a = store.add_product(new_product(1, vectors[0:2]))
    b = store.add_product(new_product(2, vectors[2:4]))
    assert store.remove_image(a.id, 99999) is None
    assert store.remove_image(a.id, b.images[0].id) is None  # an image of another product
    assert store.remove_image(99999, a.images[0].id) is None
    assert store.image_count() == store.vector_count() == 4
    assert store.get_product(a.id) == a and store.get_product(b.id) == b


# ---------------------------------------------------------------------- update_product
def test_update_product_changes_metadata_and_leaves_vectors(store: ProductStore, vectors: np.ndarray) -> None:
    p = store.add_product(new_product(1, vectors[0:2]))
    store.add_product(new_product(2, vectors[2:3]))
    make_old(store, p.id)
    ids_before = store.vector_ids()
    changes = {
        "title": "Renamed",
        "category": "boots",
        "price": 42.5,
        "attributes": {"colour": "blue", "size": 44, "vegan": True},
        "sku": "SKU-NEW",
    }
    updated = store.update_product(p.id, changes)
    assert updated is not None
    assert (updated.title, updated.category, updated.price, updated.attributes, updated.sku) == (
        "Renamed",
        "boots",
        42.5,
        {"colour": "blue", "size": 44, "vegan": True},
        "SKU-NEW",
    )
    assert updated.updated_at != OLD_TIME and updated.created_at == p.created_at
    assert updated.images == p.images
    assert store.get_product(p.id) == updated
    assert store.get_by_sku("SKU-NEW") == updated and store.get_by_sku("SKU-1") is None
    assert store.vector_ids() == ids_before
    hit = store.search(vectors[1:2], k=1)[0][0]
    assert (hit.product, hit.image_id) == (updated, p.images[1].id)


def test_update_product_with_no_changes_only_touches_updated_at(
    store: ProductStore, vectors: np.ndarray
) -> None:
    p = store.add_product(new_product(1, vectors[0:1]))
    make_old(store, p.id)
    updated = store.update_product(p.id, {})
    assert updated is not None and updated.updated_at != OLD_TIME
    assert (updated.sku, updated.title, updated.price) == (p.sku, p.title, p.price)


@pytest.mark.parametrize(
    "changes",
    [{"colour": "blue"}, {"id": 5}, {"created_at": OLD_TIME}, {"title": "ok", "images": []}],
    ids=["attribute-name", "id", "created_at", "images"],
)
def test_update_product_refuses_unknown_fields(store: ProductStore, vectors: np.ndarray, changes) -> None:
    p = store.add_product(new_product(1, vectors[0:1]))
    with pytest.raises(ValueError, match="cannot update"):
        store.update_product(p.id, changes)
    assert store.get_product(p.id) == p


@pytest.mark.parametrize(
    "changes", [{"title": ""}, {"sku": ""}, {"title": None}], ids=["title", "sku", "none"]
)
def test_update_product_refuses_an_empty_title_or_sku(
    store: ProductStore, vectors: np.ndarray, changes
) -> None:
    p = store.add_product(new_product(1, vectors[0:1]))
    with pytest.raises(ValueError, match="cannot be empty"):
        store.update_product(p.id, changes)
    assert store.get_product(p.id) == p


def test_update_product_refuses_non_object_attributes(store: ProductStore, vectors: np.ndarray) -> None:
    p = store.add_product(new_product(1, vectors[0:1]))
    with pytest.raises(ValueError, match="attributes"):
        store.update_product(p.id, {"attributes": ["red"]})
    assert store.get_product(p.id) == p


def test_update_product_to_a_taken_sku_changes_nothing(store: ProductStore, vectors: np.ndarray) -> None:
    a = store.add_product(new_product(1, vectors[0:1]))
    b = store.add_product(new_product(2, vectors[1:2]))
    with pytest.raises(DuplicateSkuError) as err:
        store.update_product(b.id, {"sku": a.sku, "title": "Should not stick", "price": 1.0})
    assert err.value.sku == a.sku
    assert store.get_product(a.id) == a and store.get_product(b.id) == b
    assert store.get_by_sku(a.sku) == a


def test_update_product_keeping_its_own_sku_is_allowed(store: ProductStore, vectors: np.ndarray) -> None:
    p = store.add_product(new_product(1, vectors[0:1]))
    updated = store.update_product(p.id, {"sku": p.sku, "title": "Same sku"})
    assert updated is not None and (updated.sku, updated.title) == (p.sku, "Same sku")


def test_update_product_of_an_unknown_id_returns_none(store: ProductStore, vectors: np.ndarray) -> None:
    store.add_product(new_product(1, vectors[0:1]))
    assert store.update_product(9999, {"title": "Ghost"}) is None
    assert store.count() == 1


# ---------------------------------------------------------------------- remove_product
def test_remove_product_deletes_its_vectors(store: ProductStore, vectors: np.ndarray) -> None:
    p = store.add_product(new_product(1, vectors[0:3]))
    keep = store.add_product(new_product(2, vectors[3:4]))
    assert store.remove_product(p.id)
    assert store.image_count() == store.vector_count() == 1
    assert all_returned_image_ids(store, vectors[0:4]) == {keep.images[0].id}
    assert [h.product.id for h in store.search(vectors[0:3], k=5)[0]] == [keep.id]


def test_remove_product_deletes_its_unshared_files(store: ProductStore, vectors: np.ndarray) -> None:
    p = store.add_product(new_product(1, vectors[0:3], seeds=[100, 101, 102]))
    other = store.add_product(new_product(2, vectors[3:4], seeds=[102]))  # shares image 102
    assert store.remove_product(p.id)
    assert not store.image_file(p.images[0]).exists() and not store.image_file(p.images[1]).exists()
    assert store.image_file(p.images[2]) == store.image_file(other.images[0])
    assert store.image_file(other.images[0]).read_bytes() == image_bytes(102)
    assert image_files(store) == {store.image_file(other.images[0])}


def test_remove_product_of_an_unknown_id_returns_false(store: ProductStore, vectors: np.ndarray) -> None:
    store.add_product(new_product(1, vectors[0:1]))
    assert store.remove_product(9999) is False
    assert store.count() == store.vector_count() == 1


# ---------------------------------------------------------------------- restart
def _add_images(store: ProductStore, ids: dict[str, Product], v: np.ndarray) -> None:
    with_images(store, ids["a"].id, [800, 801], v[10:12])


def _replace_images(store: ProductStore, ids: dict[str, Product], v: np.ndarray) -> None:
    with_images(store, ids["a"].id, [802], v[12:13], replace=True)


def _remove_image(store: ProductStore, ids: dict[str, Product], v: np.ndarray) -> None:
    assert store.remove_image(ids["a"].id, ids["a"].images[0].id) is not None


def _update_product(store: ProductStore, ids: dict[str, Product], v: np.ndarray) -> None:
    changes = {"title": "New title", "sku": "SKU-X", "price": 1.5, "attributes": {"k": 1}, "category": "c"}
    assert store.update_product(ids["a"].id, changes) is not None


def _remove_product(store: ProductStore, ids: dict[str, Product], v: np.ndarray) -> None:
    assert store.remove_product(ids["b"].id)


CHANGES: dict[str, Callable[[ProductStore, dict[str, Product], np.ndarray], None]] = {
    "add_images": _add_images,
    "replace_images": _replace_images,
    "remove_image": _remove_image,
    "update_product": _update_product,
    "remove_product": _remove_product,
}


@pytest.mark.parametrize("shutdown", ["close", "crash"])
@pytest.mark.parametrize("change", list(CHANGES))
def test_a_change_survives_reopening(tmp_path: Path, vectors: np.ndarray, change: str, shutdown: str) -> None:
    directory = tmp_path / "store"
    store = ProductStore(directory, FP, DIM)
    added = store.add_products(
        [new_product(0, vectors[0:3]), new_product(1, vectors[3:5])]
        + [new_product(i, vectors[i + 3 : i + 4]) for i in range(2, 6)]
    ).products
    assert store.snapshot() > 0  # the change below comes after the snapshot: a crash must replay it
    CHANGES[change](store, {"a": added[0], "b": added[1]}, vectors)
    queries = vectors[:14]
    expected = summary(store, queries)
    products = store.list_products(limit=100)
    if shutdown == "close":
        store.close()
    else:
        store.db.close()  # no final snapshot

    with ProductStore(directory) as reopened:
        assert summary(reopened, queries) == expected
        assert reopened.list_products(limit=100) == products
        assert reopened.vector_count() == reopened.image_count()
        held, tombstones = reopened.vector_ids()
        assert held - tombstones == {i.id for p in products for i in p.images}
