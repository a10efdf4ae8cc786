"""Metadata filters at search time, checked against exact top-k computed with numpy over only the
matching products (each product scored by its best image)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import index.search
from index import NewProduct, ProductStore, SearchFilter
from index.vectors import VectorIndex
from tests.conftest import image_bytes
from tests.index.conftest import DIM, FP, unit

N_PRODUCTS = 150  # 1-3 images each: 300 images, enough to train IVF16,PQ4
CATEGORIES = ("shoes", "bags", "hats")
COLOURS = ("red", "blue", "green")


@dataclass(frozen=True)
class Ref:
    """What numpy needs to compute the exact answer: every stored image and its product."""

    sku: str
    category: str
    price: float | None
    attributes: dict
    vectors: np.ndarray  # (images, DIM)


@dataclass
class Catalog:
    directory: Path
    refs: list[Ref]


def make_refs() -> list[Ref]:
    rng = np.random.default_rng(2024)
    refs = []
    for i in range(N_PRODUCTS):
        refs.append(
            Ref(
                f"SKU-{i}",
                CATEGORIES[i % 3],
                None if i % 17 == 0 else round(float(rng.uniform(5, 100)), 2),
                {
                    "colour": COLOURS[int(rng.integers(3))],
                    "size": int(rng.integers(36, 45)),
                    "sale": i % 4 == 0,
                },
                unit(rng, 1 + i % 3),
            )
        )
    return refs


def to_new_product(i: int, ref: Ref) -> NewProduct:
    images = tuple(image_bytes(10 * i + j, size=(24, 24)) for j in range(len(ref.vectors)))
    return NewProduct(ref.sku, f"Product {i}", ref.category, ref.price, ref.attributes, images, ref.vectors)


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    """A closed store, built once per module; each test works on a copy."""
    directory = tmp_path_factory.mktemp("filters") / "template"
    refs = make_refs()
    with ProductStore(directory, FP, DIM) as s:
        s.add_products([to_new_product(i, r) for i, r in enumerate(refs)])
    return Catalog(directory, refs)


def open_copy(catalog: Catalog, tmp_path: Path, **kw) -> ProductStore:
    target = tmp_path / "store"
    shutil.copytree(catalog.directory, target)
    return ProductStore(target, **kw)


@pytest.fixture()
def store(catalog: Catalog, tmp_path: Path) -> Iterator[ProductStore]:
    with open_copy(catalog, tmp_path) as s:
        yield s


@pytest.fixture()
def faiss_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Send every non-empty filter to FAISS (a small store never passes the real limit)."""
    monkeypatch.setattr(index.search, "EXACT_FILTER_LIMIT", 5)


@pytest.fixture()
def queries() -> np.ndarray:
    return unit(np.random.default_rng(77), 8)


def matches(ref: Ref, f: SearchFilter) -> bool:
    return (
        (f.category is None or ref.category == f.category)
        and (f.min_price is None or (ref.price is not None and ref.price >= f.min_price))
        and (f.max_price is None or (ref.price is not None and ref.price <= f.max_price))
        and all(k in ref.attributes and ref.attributes[k] == v for k, v in f.attributes.items())
    )


def exact_top_k(
    store: ProductStore, refs: list[Ref], queries: np.ndarray, k: int, f: SearchFilter
) -> list[list[tuple[int, int, float]]]:
    """Per query: (product id, best image id, score) of the k best matching products."""
    candidates = []
    for ref in refs:
        p = store.get_by_sku(ref.sku)
        if p is not None and matches(ref, f):
            candidates.append((p, ref.vectors))
    results = []
    for q in queries:
        scored = []
        for p, vecs in candidates:
            s = vecs @ q
            best = int(np.argmax(s))
            scored.append((p.id, p.images[best].id, float(s[best])))
        scored.sort(key=lambda t: -t[2])
        results.append(scored[:k])
    return results


def hits(
    store: ProductStore, queries: np.ndarray, k: int, f: SearchFilter | None
) -> list[list[tuple[int, int, float]]]:
    return [[(h.product.id, h.image_id, h.score) for h in row] for row in store.search(queries, k, f)]


def assert_same(got: list[list[tuple[int, int, float]]], want: list[list[tuple[int, int, float]]]) -> None:
    assert [[(p, i) for p, i, _ in row] for row in got] == [[(p, i) for p, i, _ in row] for row in want]
    for g_row, w_row in zip(got, want, strict=True):
        assert [s for *_, s in g_row] == pytest.approx([s for *_, s in w_row], abs=1e-5)


def matching_images(refs: list[Ref], f: SearchFilter) -> int:
    return sum(len(r.vectors) for r in refs if matches(r, f))


def assert_approximately_right(
    store: ProductStore, refs: list[Ref], queries: np.ndarray, k: int, f: SearchFilter, min_recall: float
) -> None:
    """For ANN indexes: k hits, all matching the filter, true scores, best first, high recall."""
    got = hits(store, queries, k, f)
    want = exact_top_k(store, refs, queries, k, f)
    by_sku = {r.sku: r for r in refs}
    for row, q in zip(got, queries, strict=True):
        assert len(row) == k
        scores = [s for *_, s in row]
        assert scores == sorted(scores, reverse=True)
        for pid, image_id, score in row:
            product = store.get_product(pid)
            assert product is not None and matches(by_sku[product.sku], f)
            row_of_image = [i.id for i in product.images].index(image_id)
            assert score == pytest.approx(float(by_sku[product.sku].vectors[row_of_image] @ q), abs=1e-4)
    found = sum(len({p for p, *_ in g} & {p for p, *_ in w}) for g, w in zip(got, want, strict=True))
    assert found / sum(len(w) for w in want) >= min_recall


BROAD = SearchFilter(min_price=20.0)
SELECTIVE = SearchFilter(category="hats", attributes={"colour": "red", "sale": False})


# ---------------------------------------------------------------------- exact answers
def test_a_selective_filter_gives_the_exact_top_k(store: ProductStore, catalog: Catalog, queries) -> None:
    assert 5 < sum(matches(r, SELECTIVE) for r in catalog.refs) < 30
    got = hits(store, queries, 5, SELECTIVE)
    assert_same(got, exact_top_k(store, catalog.refs, queries, 5, SELECTIVE))


@pytest.mark.parametrize(
    "f",
    [
        BROAD,
        SearchFilter(category="shoes"),
        SearchFilter(max_price=60.0, attributes={"colour": "blue"}),
        SearchFilter(min_price=30.0, max_price=70.0, category="bags"),
    ],
    ids=["min-price", "category", "max-price+colour", "price-range+category"],
)
def test_a_broad_filter_on_flat_filters_inside_faiss_exactly(
    store: ProductStore, catalog: Catalog, queries, faiss_path, f: SearchFilter
) -> None:
    assert matching_images(catalog.refs, f) > index.search.EXACT_FILTER_LIMIT
    assert store.index_type == "Flat" and store.vectors.supports_selector
    got = hits(store, queries, 10, f)
    assert_same(got, exact_top_k(store, catalog.refs, queries, 10, f))


def test_filtered_results_equal_exact_search_in_both_paths(
    store: ProductStore, catalog: Catalog, queries, monkeypatch: pytest.MonkeyPatch
) -> None:
    exact = hits(store, queries, 10, BROAD)  # 4096 > 300 images: the exact path
    monkeypatch.setattr(index.search, "EXACT_FILTER_LIMIT", 5)
    assert_same(hits(store, queries, 10, BROAD), exact)


@pytest.mark.parametrize("path", ["exact", "faiss"])
def test_filters_after_removals_with_tombstones(
    catalog: Catalog, tmp_path: Path, queries, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    if path == "faiss":
        monkeypatch.setattr(index.search, "EXACT_FILTER_LIMIT", 5)
    with open_copy(catalog, tmp_path, force_tombstones=True) as store:
        removed = catalog.refs[::5]
        for ref in removed:
            p = store.get_by_sku(ref.sku)
            assert p is not None and store.remove_product(p.id)
        assert store.index_info()["tombstones"] == sum(len(r.vectors) for r in removed)
        for f in (BROAD, SELECTIVE):
            assert_same(hits(store, queries, 10, f), exact_top_k(store, catalog.refs, queries, 10, f))


def test_filters_after_rebuilding_to_hnsw(store: ProductStore, catalog: Catalog, queries, faiss_path) -> None:
    store.rebuild("HNSW32")
    assert store.vectors.supports_selector  # HNSW filters inside FAISS
    assert_approximately_right(store, catalog.refs, queries, 10, BROAD, min_recall=0.9)


def test_filters_after_rebuilding_to_ivf_flat(
    store: ProductStore, catalog: Catalog, queries, faiss_path
) -> None:
    store.rebuild("IVF16,Flat")
    assert store.vectors.supports_selector
    assert_approximately_right(store, catalog.refs, queries, 10, BROAD, min_recall=0.9)


def test_filters_after_rebuilding_to_ivf_pq_refine(
    store: ProductStore, catalog: Catalog, queries, faiss_path
) -> None:
    assert store.rebuild("IVF16,PQ4").index_type == "IVF16,PQ4,RFlat"
    assert not store.vectors.supports_selector  # a refine stage: the store over-fetches and drops
    assert_approximately_right(store, catalog.refs, queries, 10, BROAD, min_recall=0.9)
    narrow = SearchFilter(category="hats", attributes={"colour": "green"})
    assert matching_images(catalog.refs, narrow) > index.search.EXACT_FILTER_LIMIT
    assert_approximately_right(store, catalog.refs, queries, 3, narrow, min_recall=0.8)


# ---------------------------------------------------------------------- result counts
def _count_filter(catalog: Catalog) -> tuple[SearchFilter, int]:
    f = SearchFilter(category="bags", attributes={"colour": "green"})
    return f, sum(matches(r, f) for r in catalog.refs)


@pytest.mark.parametrize("limit", [4096, 0], ids=["exact", "faiss"])
def test_a_filter_matching_exactly_k_products_returns_all_k(
    store: ProductStore, catalog: Catalog, queries, monkeypatch: pytest.MonkeyPatch, limit: int
) -> None:
    monkeypatch.setattr(index.search, "EXACT_FILTER_LIMIT", limit)
    f, n = _count_filter(catalog)
    assert n >= 3
    want = {r.sku for r in catalog.refs if matches(r, f)}
    for row in store.search(queries, k=n, filter=f):
        assert len(row) == n and {h.product.sku for h in row} == want


@pytest.mark.parametrize("limit", [4096, 0], ids=["exact", "faiss"])
def test_a_filter_matching_fewer_than_k_products_returns_them_all(
    store: ProductStore, catalog: Catalog, queries, monkeypatch: pytest.MonkeyPatch, limit: int
) -> None:
    monkeypatch.setattr(index.search, "EXACT_FILTER_LIMIT", limit)
    f, n = _count_filter(catalog)
    got = hits(store, queries, n + 20, f)
    assert all(len(row) == n for row in got)
    assert_same(got, exact_top_k(store, catalog.refs, queries, n + 20, f))


@pytest.mark.parametrize(
    "f",
    [
        SearchFilter(category="no-such-category"),
        SearchFilter(min_price=1000.0),
        SearchFilter(category="hats", attributes={"colour": "purple"}),
        SearchFilter(attributes={"no-such-key": "x"}),
    ],
    ids=["category", "price", "attribute-value", "attribute-key"],
)
def test_a_filter_matching_nothing_returns_empty_lists(
    store: ProductStore, queries, faiss_path, f: SearchFilter
) -> None:
    assert store.search(queries, k=5, filter=f) == [[] for _ in queries]


def test_products_without_a_price_never_match_a_price_filter(store: ProductStore, catalog: Catalog) -> None:
    unpriced = {r.sku for r in catalog.refs if r.price is None}
    assert unpriced
    found = store.search(
        np.concatenate([r.vectors for r in catalog.refs]), k=1, filter=SearchFilter(min_price=0)
    )
    assert not unpriced & {row[0].product.sku for row in found}


def test_an_empty_filter_searches_everything(store: ProductStore, queries) -> None:
    assert hits(store, queries, 10, SearchFilter()) == hits(store, queries, 10, None)


def test_min_price_above_max_price_is_refused() -> None:
    with pytest.raises(ValueError, match="min_price"):
        SearchFilter(min_price=50.0, max_price=10.0)
    assert not SearchFilter(min_price=10.0, max_price=10.0).is_empty


@pytest.mark.parametrize("attributes", [{"": "x"}, {"colour": ["red"]}, {"colour": {"a": 1}}])
def test_attribute_filters_need_a_name_and_a_scalar(attributes) -> None:
    with pytest.raises(ValueError, match="attribute filter"):
        SearchFilter(attributes=attributes)


# ---------------------------------------------------------------------- attribute equality
ATTRIBUTES = {
    "P1": {"colour": "red", "size": 42, "in_stock": True, "weight": 1.5},
    "P2": {"colour": "blue", "size": "42", "in_stock": False, "weight": 2},
    "P3": {"colour": "red", "size": 40, "in_stock": "yes"},
    "P4": {},
    "P5": {"colour": "Red", "in_stock": None},
    "P6": {"a.b": "x", "it's": "y", "größe": "z", "'; DROP TABLE products; --": "w", "a\\b": "v"},
    "P7": {"a": {"b": "x"}, 'a"b': "q"},
}


@pytest.fixture()
def small(tmp_path: Path) -> Iterator[ProductStore]:
    """A store of the products above."""
    with ProductStore(tmp_path / "small", FP, DIM) as s:
        v = unit(np.random.default_rng(5), len(ATTRIBUTES))
        s.add_products(
            [
                NewProduct(sku, sku, "c", 1.0, attrs, (image_bytes(i, size=(24, 24)),), v[i : i + 1])
                for i, (sku, attrs) in enumerate(ATTRIBUTES.items())
            ]
        )
        yield s


def found(store: ProductStore, attributes: dict) -> set[str]:
    """The skus an attribute filter lets through (the query does not matter: k covers all)."""
    query = np.full((1, DIM), DIM**-0.5, dtype=np.float32)
    return {h.product.sku for h in store.search(query, k=20, filter=SearchFilter(attributes=attributes))[0]}


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        ({"colour": "red"}, {"P1", "P3"}),  # case-sensitive: not P5's "Red"
        ({"colour": "Red"}, {"P5"}),
        ({"size": 42}, {"P1"}),  # the number, not P2's string "42"
        ({"size": "42"}, {"P2"}),
        ({"weight": 1.5}, {"P1"}),
        ({"weight": 2.0}, {"P2"}),  # 2.0 == 2
        ({"in_stock": True}, {"P1"}),
        ({"in_stock": False}, {"P2"}),
        ({"in_stock": "yes"}, {"P3"}),
        ({"in_stock": None}, {"P5"}),  # a JSON null, not a missing key (P4)
        ({"colour": "red", "size": 40}, {"P3"}),
        ({"colour": "red", "in_stock": False}, set()),
    ],
    ids=[
        "string",
        "string-case",
        "int-not-string",
        "string-not-int",
        "float",
        "float-equals-int",
        "true",
        "false",
        "string-not-bool",
        "null-not-missing",
        "two-keys",
        "two-keys-no-match",
    ],
)
def test_attribute_equality(small: ProductStore, attributes: dict, expected: set[str]) -> None:
    assert found(small, attributes) == expected


@pytest.mark.parametrize(
    ("key", "value"),
    [("a.b", "x"), ("it's", "y"), ("größe", "z"), ("'; DROP TABLE products; --", "w"), ("a\\b", "v")],
    ids=["dot", "single-quote", "non-ascii", "sql", "backslash"],
)
def test_attribute_keys_with_special_characters_match_literally(
    small: ProductStore, key: str, value: str
) -> None:
    assert found(small, {key: value}) == {"P6"}
    assert small.count() == len(ATTRIBUTES) and small.repository.count_products() == 7


def test_a_dotted_key_is_not_a_json_path(small: ProductStore) -> None:
    assert found(small, {"a.b": "x"}) == {"P6"}  # not P7's {"a": {"b": "x"}}
    assert found(small, {"$.a.b": "x"}) == set()


def test_an_attribute_key_with_a_double_quote_matches(small: ProductStore) -> None:
    assert found(small, {'a"b': "q"}) == {"P7"}


def test_over_fetching_stops_at_its_cap_and_falls_back_to_exact_search(
    store: ProductStore, catalog: Catalog, queries, faiss_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An index that cannot filter inside FAISS (as on a GPU) over-fetches past a filter; a filter
    so selective that the top MAX_FETCH hold too few of its products is answered exactly, and no
    search goes deeper than the cap (before, it went on to the whole index)."""
    monkeypatch.setattr(index.search, "MAX_FETCH", 16)
    monkeypatch.setattr(VectorIndex, "supports_selector", property(lambda self: False))
    depths: list[int] = []
    real_search = VectorIndex.search

    def spy(self: VectorIndex, q: np.ndarray, k: int, allowed: np.ndarray | None = None):
        depths.append(k)
        return real_search(self, q, k, allowed)

    monkeypatch.setattr(VectorIndex, "search", spy)
    assert 5 < matching_images(catalog.refs, SELECTIVE) < store.image_count() // 4
    got = hits(store, queries, 10, SELECTIVE)
    assert_same(got, exact_top_k(store, catalog.refs, queries, 10, SELECTIVE))
    assert depths and max(depths) <= 16
