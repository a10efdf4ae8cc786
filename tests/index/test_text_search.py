"""Text search (FTS5) in the store, and reciprocal-rank fusion."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np

from index import NewProduct, ProductStore, SearchFilter
from index.fusion import reciprocal_rank_fusion

DIM = 4


def store_with_three(directory: Path) -> ProductStore:
    v = np.eye(DIM, dtype=np.float32)
    store = ProductStore(directory, "f" * 64, DIM, duplicate_policy="off")
    store.add_products(
        [
            NewProduct("A", "Red summer dress", "dress", 10, {"colour": "red"}, (b"a",), v[:1]),
            NewProduct("B", "Blue jeans", "pants", 30, {"colour": "blue"}, (b"b",), v[1:2]),
            NewProduct("C", "Crème brûlée dress", "dress", 50, {"colour": "beige"}, (b"c",), v[2:3]),
        ]
    )
    return store


def skus(hits) -> list[str]:
    return [h.product.sku for h in hits]


def test_words_prefixes_accents_attributes_and_filters(tmp_path: Path) -> None:
    with store_with_three(tmp_path / "s") as store:
        assert set(skus(store.text_search("dress"))) == {"A", "C"}
        assert set(skus(store.text_search("DRE"))) == {"A", "C"}  # prefix, any case
        assert skus(store.text_search("creme brulee")) == ["C"]  # accents folded
        assert skus(store.text_search("blue")) == ["B"]  # from the attributes too
        assert skus(store.text_search("summer dress")) == ["A"]  # every word must match
        assert skus(store.text_search("dress", filter=SearchFilter(max_price=20))) == ["A"]
        assert store.text_search("") == [] and store.text_search("   ...  ") == []
        assert len(store.text_search("dress", k=1)) == 1


def test_the_text_index_follows_updates_and_deletes(tmp_path: Path) -> None:
    with store_with_three(tmp_path / "s") as store:
        b = store.get_by_sku("B")
        assert b is not None
        store.update_product(b.id, {"title": "Blue denim dress"})
        assert set(skus(store.text_search("dress"))) == {"A", "B", "C"}
        assert skus(store.text_search("jeans")) == []
        store.remove_product(b.id)
        assert set(skus(store.text_search("dress"))) == {"A", "C"}


def test_fts_syntax_from_the_client_is_only_words(tmp_path: Path) -> None:
    with store_with_three(tmp_path / "s") as store:
        for hostile in (
            '" OR 1=1 --',
            "dress NOT red",
            "title:jeans",
            "NEAR(dress red)",
            "*",
            "'; DROP TABLE products",
        ):
            store.text_search(hostile)  # never an FTS syntax error, never SQL
        assert skus(store.text_search("dress NOT red")) == []  # "not" is just a word that matches nothing
        assert store.count() == 3


def test_a_store_made_before_text_search_is_indexed_once_on_open(tmp_path: Path) -> None:
    store_with_three(tmp_path / "s").close()
    with sqlite3.connect(tmp_path / "s" / ProductStore.DB_NAME) as db:  # as an older version left it
        db.execute("INSERT INTO products_text (products_text) VALUES ('delete-all')")
        db.execute("DELETE FROM meta WHERE key = 'text_index'")
    with ProductStore(tmp_path / "s") as store:
        assert set(skus(store.text_search("dress"))) == {"A", "C"}


def test_reciprocal_rank_fusion() -> None:
    fused = reciprocal_rank_fusion([["a", "b", "c"], ["c", "a", "d"]], k=60)
    assert [item for item, _ in fused] == ["a", "c", "b", "d"]
    assert fused[0][1] == 1 / 61 + 1 / 62
    assert reciprocal_rank_fusion([]) == [] and reciprocal_rank_fusion([[], ["x"]]) == [("x", 1 / 61)]
