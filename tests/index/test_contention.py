"""Contention points: reads that hold up no other read, limits on text queries, GPU calls that
take turns. Real SQLite stores and FAISS indexes; ordering by events, never by the clock (the
timeouts only catch a hang)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pytest

import index.db.sqlite
from index import NewProduct, ProductStore, QueryTimeout, TextQueryError
from index.text_query import MAX_WORDS
from index.vectors import VectorIndex
from tests.index.conftest import DIM, FP, unit

HANG = 30.0  # seconds: only a hang takes this long


@pytest.fixture()
def store(tmp_path: Path) -> Iterator[ProductStore]:
    vectors = unit(np.random.default_rng(5), 6)
    titles = ["Red T-shirt", "Tall boots", "Summer dress", "Blue dress", "Dress shoes", "Tote bag"]
    with ProductStore(tmp_path / "store", FP, DIM, duplicate_policy="off") as s:
        s.add_products(
            [
                NewProduct(f"S{i}", title, "c", 10.0, {}, (bytes([i]),), vectors[i : i + 1])
                for i, title in enumerate(titles)
            ]
        )
        yield s


def in_thread(fn: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(fn())
        except BaseException as exc:  # handed to the test to assert on
            out.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def image_search(store: ProductStore) -> list[str]:
    query = store.get_by_sku("S3")
    assert query is not None
    vector = store.repository.product_embeddings(query.id)[1][:1]
    return [h.product.sku for h in store.search(vector, 3)[0]]


def test_a_slow_text_query_does_not_hold_up_an_image_search(
    store: ProductStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The text query is held inside SQLite (its progress handler waits) while another thread's
    image search, which reads the database too, runs to its end."""
    inside, release = threading.Event(), threading.Event()

    def held(deadline: float) -> bool:
        inside.set()
        release.wait(HANG)
        return False

    monkeypatch.setattr(index.db.sqlite, "PROGRESS_STEPS", 1)
    monkeypatch.setattr(index.db.sqlite, "_expired", held)
    text, text_out = in_thread(lambda: store.text_search("dress", 10, timeout_s=HANG))
    assert inside.wait(HANG)
    search, search_out = in_thread(lambda: image_search(store))
    search.join(HANG)
    try:
        assert not search.is_alive(), "the image search waited for the text query"
        assert text.is_alive()  # still held: the search did not wait for its end
        assert search_out[0][0] == "S3"
    finally:
        release.set()
        text.join(HANG)
    assert {h.product.sku for h in text_out[0]} == {"S2", "S3", "S4"}


def test_a_read_held_open_holds_up_no_other_read(store: ProductStore) -> None:
    inside, release = threading.Event(), threading.Event()

    def long_read() -> int:
        with store.db.snapshot() as read:
            n = int(read.scalar("SELECT COUNT(*) FROM products"))
            inside.set()
            release.wait(HANG)
            return n

    reader, reader_out = in_thread(long_read)
    assert inside.wait(HANG)
    search, search_out = in_thread(lambda: (image_search(store), store.count()))
    search.join(HANG)
    try:
        assert not search.is_alive(), "a read waited for another connection's open read"
        assert search_out[0][1] == 6
    finally:
        release.set()
        reader.join(HANG)
    assert reader_out == [6]


def test_short_words_match_whole_words_and_longer_ones_prefixes(store: ProductStore) -> None:
    def skus(q: str) -> set[str]:
        return {h.product.sku for h in store.text_search(q)}

    assert skus("t") == {"S0"}  # the "t" of T-shirt, not every word starting with t
    assert skus("t shirt") == {"S0"}
    assert skus("ta") == {"S1"}  # two letters: a prefix of "tall"
    assert skus("to") == {"S5"}
    assert skus("dr") == {"S2", "S3", "S4"}


def test_a_text_query_has_a_bounded_number_of_words(store: ProductStore) -> None:
    words = [f"w{i}" for i in range(MAX_WORDS + 1)]
    with pytest.raises(TextQueryError, match=f"at most {MAX_WORDS}"):
        store.text_search(" ".join(words))
    assert store.text_search(" ".join(words[:MAX_WORDS])) == []  # at the limit: answered
    assert len(store.text_search(" ".join(["dress"] * 100))) == 3  # a repeated word counts once


def test_a_text_query_past_its_time_limit_is_stopped(
    store: ProductStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(index.db.sqlite, "PROGRESS_STEPS", 1)
    monkeypatch.setattr(index.db.sqlite, "_expired", lambda deadline: True)
    with pytest.raises(QueryTimeout):
        store.text_search("dress", timeout_s=1)
    monkeypatch.undo()
    assert len(store.text_search("dress")) == 3  # the connection it ran on reads normally again
    assert len(store.text_search("dress", timeout_s=None)) == 3


def test_read_connections_are_reused_and_closed_with_the_store(tmp_path: Path) -> None:
    store = ProductStore(tmp_path / "s", FP, DIM)
    readers = store.db._readers  # type: ignore[attr-defined]
    for _ in range(20):
        store.count()
    assert readers.idle == 1  # one reader at a time: one connection, reused
    store.close()
    assert readers.idle == 0
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        store.count()


# ---------------------------------------------------------------------- GPU calls take turns
class _Probe:
    """Stands in for a FAISS index: counts the searches inside it at once, and holds the first
    one until ``release``."""

    def __init__(self, index: faiss.Index) -> None:
        self.index, self.inside, self.most = index, 0, 0
        self.lock = threading.Lock()
        self.first_in, self.second_in, self.release = threading.Event(), threading.Event(), threading.Event()
        self.ntotal = index.ntotal
        self.d = index.d

    def search(self, queries: np.ndarray, k: int, params: Any = None) -> tuple[np.ndarray, np.ndarray]:
        with self.lock:
            self.inside += 1
            self.most = max(self.most, self.inside)
            first = not self.first_in.is_set()
            (self.first_in if first else self.second_in).set()
        if first:
            self.release.wait(HANG)
        try:
            return self.index.search(queries, k)
        finally:
            with self.lock:
                self.inside -= 1


def _probed(serialise: bool | None) -> tuple[VectorIndex, _Probe]:
    cpu = faiss.IndexIDMap2(faiss.IndexFlatIP(DIM))
    vectors = unit(np.random.default_rng(1), 20)
    cpu.add_with_ids(vectors, np.arange(1, 21, dtype=np.int64))
    index_ = VectorIndex(cpu, "Flat", serialise=serialise)
    probe = _Probe(cpu)
    index_._index = probe  # type: ignore[assignment]
    return index_, probe


def _two_searches(index_: VectorIndex, probe: _Probe, second_enters: bool) -> None:
    queries = unit(np.random.default_rng(2), 1)
    first, _ = in_thread(lambda: index_.search(queries, 3))
    assert probe.first_in.wait(HANG)
    second, out = in_thread(lambda: index_.search(queries, 3))
    # without turns the second search enters while the first is held; with turns it cannot
    # (a slow machine can only make this wait pass, never fail, when turns are taken)
    assert probe.second_in.wait(HANG if second_enters else 0.5) is second_enters
    probe.release.set()
    first.join(HANG)
    second.join(HANG)
    assert not first.is_alive() and not second.is_alive() and len(out[0][1][0]) == 3


def test_calls_into_a_gpu_index_take_turns() -> None:
    """The lock's logic, on the CPU with the flag forced: one search inside FAISS at a time."""
    index_, probe = _probed(serialise=True)
    assert index_.serialised
    _two_searches(index_, probe, second_enters=False)
    assert probe.most == 1


def test_searches_of_a_cpu_index_run_side_by_side() -> None:
    index_, probe = _probed(serialise=None)  # None: take turns only on a GPU
    assert not index_.serialised
    _two_searches(index_, probe, second_enters=True)
    assert probe.most == 2
