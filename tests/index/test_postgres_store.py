"""The product store on a real PostgreSQL server: the same contract as on SQLite, and several
stores (server replicas, each with its own directory and FAISS copy) sharing one database."""

from __future__ import annotations

import argparse
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psycopg
import pytest

import index.search
from index import (
    DuplicateSkuError,
    EncoderMismatchError,
    NewProduct,
    ProductStore,
    QueryTimeout,
    SearchFilter,
)
from ops.check import check_store
from ops.maintenance import configure
from ops.maintenance import main as maintenance_main
from tests.conftest import image_bytes
from tests.index.conftest import DIM, FP, product, unit
from tests.index.test_store_filters import (
    assert_same,
    exact_top_k,
    hits,
    make_refs,
    matches,
    to_new_product,
)


@pytest.fixture()
def store(tmp_path: Path, database_url: str) -> Iterator[ProductStore]:
    with ProductStore(tmp_path / "a", FP, DIM, database_url=database_url) as s:
        yield s


def replica(tmp_path: Path, database_url: str, name: str, **kw) -> ProductStore:
    """Another store over the same database, with its own directory (FAISS snapshot, image cache)."""
    return ProductStore(tmp_path / name, database_url=database_url, **kw)


def faiss_ids(store: ProductStore) -> set[int]:
    held, tombstones = store.vector_ids()
    return held - tombstones


def db_image_ids(store: ProductStore) -> set[int]:
    return store.repository.image_ids()


# ---------------------------------------------------------------------- the store contract
def test_add_get_search_update_remove(store: ProductStore, tmp_path: Path) -> None:
    assert not (tmp_path / "a" / ProductStore.DB_NAME).exists()  # nothing of SQLite
    rng = np.random.default_rng(0)
    vectors = unit(rng, 30)
    attrs = {"colour": "rød", "size": 38, "weight": 1.5, "sale": True, "tags": ["a", "b"], "note": None}
    added = store.add_products(
        [product(i, vectors[i : i + 1], attributes=attrs if i == 3 else {}) for i in range(30)]
    ).products
    assert store.count() == 30 and store.vector_count() == 30 and store.image_count() == 30
    got = store.get_product(added[3].id)
    assert got is not None and got.sku == "SKU-3" and got.attributes == attrs and got.price == 9.5
    assert store.get_by_sku("SKU-3") == got and store.existing_skus(["SKU-3", "nope"]) == {"SKU-3"}

    queries = unit(rng, 5)
    exact = np.argsort(-(queries @ vectors.T), axis=1)[:, :7]
    for row, expected, q in zip(store.search(queries, k=7), exact, queries, strict=True):
        assert [h.product.sku for h in row] == [f"SKU-{i}" for i in expected]
        assert row[0].score == pytest.approx(float(np.max(vectors @ q)), abs=1e-5)

    updated = store.update_product(added[3].id, {"title": "Renamed", "attributes": {"colour": "blue"}})
    assert updated is not None and updated.title == "Renamed" and updated.attributes == {"colour": "blue"}
    with pytest.raises(DuplicateSkuError):
        store.update_product(added[3].id, {"sku": "SKU-4"})
    with pytest.raises(DuplicateSkuError):
        store.add_products([product(99, unit(rng, 1)), product(4, unit(rng, 1))])
    assert store.count() == 30 and store.get_by_sku("SKU-99") is None  # all or nothing

    assert store.remove_product(added[0].id) and not store.remove_product(added[0].id)
    assert store.get_product(added[0].id) is None and store.vector_count() == 29
    assert all(h.product.id != added[0].id for h in store.search(vectors[:1], k=5)[0])
    assert [p.sku for p in store.list_products(offset=2, limit=3)] == ["SKU-3", "SKU-4", "SKU-5"]
    assert faiss_ids(store) == db_image_ids(store)
    assert check_store(store) == []


def test_images_add_replace_remove_and_their_bytes(store: ProductStore, tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    p = store.add_product(product(1, unit(rng, 2)))
    other = store.add_product(NewProduct("O", "Other", images=(image_bytes(10),), embeddings=unit(rng, 1)))
    shared = other.images[0].path  # product 1's first photo has the same bytes
    assert p.images[0].path == shared
    result = store.add_images(p.id, [image_bytes(500)], unit(rng, 1))
    assert result is not None and len(result[0].images) == 3
    updated = store.remove_image(p.id, p.images[1].id)
    assert updated is not None and len(updated.images) == 2
    assert store.repository.image_bytes(p.images[1].path) is None  # nobody's photo any more
    assert store.remove_product(p.id)
    assert store.repository.image_bytes(shared) == image_bytes(10)  # still the other product's
    assert store.repository.image_bytes(result[0].images[2].path) is None
    assert faiss_ids(store) == db_image_ids(store) == {other.images[0].id}


def test_filters_match_numpy_and_sqlite_on_both_search_paths(
    store: ProductStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    refs = make_refs()[:60]
    store.add_products([to_new_product(i, r) for i, r in enumerate(refs)])
    queries = unit(np.random.default_rng(77), 6)
    plain = [  # Python's == agrees with JSON equality on these: numpy is the reference
        SearchFilter(category="hats", attributes={"sale": False}),
        SearchFilter(min_price=20.0, max_price=70.0),
        SearchFilter(attributes={"colour": "red", "size": 40}),
        SearchFilter(attributes={"size": 40.0}),  # 40 == 40.0
        SearchFilter(attributes={"size": "40"}),  # a string never equals a number
    ]
    typed = [  # JSON types: SQLite (json_each) is the reference
        SearchFilter(attributes={"sale": 1}),  # 1 is not true
        SearchFilter(attributes={"sale": True}),
        SearchFilter(attributes={"missing": None}),
    ]
    with pytest.raises(ValueError, match="NaN"):  # JSON has no NaN: such a filter is refused
        SearchFilter(attributes={"size": float("nan")})
    with ProductStore(tmp_path / "sqlite", FP, DIM) as sqlite:
        sqlite.add_products([to_new_product(i, r) for i, r in enumerate(refs)])
        for f in plain + typed:
            want = exact_top_k(store, refs, queries, 5, f) if f in plain else hits(sqlite, queries, 5, f)
            assert_same(hits(store, queries, 5, f), want)  # the exact path (few images)
            with monkeypatch.context() as m:
                m.setattr(index.search, "EXACT_FILTER_LIMIT", 0)
                assert_same(hits(store, queries, 5, f), want)  # inside FAISS
    assert sum(matches(r, plain[2]) for r in refs) > 0 and sum(matches(r, plain[4]) for r in refs) == 0
    assert hits(store, queries, 5, typed[0]) == [[]] * 6 and len(hits(store, queries, 5, typed[1])[0]) == 5
    assert {p.sku for p in store.list_products(limit=200, filter=SearchFilter(category="hats"))} == {
        r.sku for r in refs if r.category == "hats"
    }


def test_text_search_words_prefixes_accents_attributes(store: ProductStore) -> None:
    v = np.eye(DIM, dtype=np.float32)
    store.add_products(
        [
            NewProduct("A", "Red summer dress", "dress", 10, {"colour": "red"}, (b"a",), v[:1]),
            NewProduct("B", "Blue jeans", "pants", 30, {"colour": "blue"}, (b"b",), v[1:2]),
            NewProduct("C", "Crème brûlée dress", "dress", 50, {"colour": "beige"}, (b"c",), v[2:3]),
        ]
    )

    def skus(query: str, **kw) -> list[str]:
        return [h.product.sku for h in store.text_search(query, **kw)]

    assert set(skus("dress")) == {"A", "C"} and set(skus("DRE")) == {"A", "C"}
    assert skus("creme brulee") == ["C"] and skus("crème") == ["C"]
    assert skus("blue") == ["B"] and skus("summer dress") == ["A"]
    assert skus("dress", filter=SearchFilter(max_price=20)) == ["A"]
    assert skus("") == [] and skus("  ... ") == [] and len(skus("dress", k=1)) == 1
    for hostile in (
        '" OR 1=1 --',
        "dress NOT red",
        "title:jeans",
        "*",
        "'; DROP TABLE products",
        "a & b | !c",
    ):
        store.text_search(hostile)  # never a syntax error, never SQL
    assert skus("dress NOT red") == [] and store.count() == 3
    b = store.get_by_sku("B")
    assert b is not None
    store.update_product(b.id, {"title": "Blue denim dress"})
    assert set(skus("dress")) == {"A", "B", "C"} and skus("jeans") == []


def test_restart_replays_changes_newer_than_the_snapshot(tmp_path: Path, database_url: str) -> None:
    rng = np.random.default_rng(4)
    v = unit(rng, 6)
    store = ProductStore(tmp_path / "s", FP, DIM, database_url=database_url)
    ids = [p.id for p in store.add_products([product(i, v[i : i + 1]) for i in range(4)]).products]
    assert store.snapshot() > 0
    store.add_product(product(4, v[4:5]))  # after the snapshot
    store.remove_product(ids[0])
    store.db.close()  # a crash: no final snapshot

    with ProductStore(tmp_path / "s", FP, DIM, database_url=database_url) as reopened:
        assert reopened.vector_count() == 4 and faiss_ids(reopened) == db_image_ids(reopened)
        assert reopened.search(v[4:5], k=1)[0][0].product.sku == "SKU-4"
        assert all(h.product.id != ids[0] for h in reopened.search(v[:1], k=5)[0])


def test_the_encoder_is_checked_and_bad_urls_are_refused(tmp_path: Path, database_url: str) -> None:
    with pytest.raises(ValueError, match="holds no store yet"):
        ProductStore(tmp_path / "x", database_url=database_url)
    ProductStore(tmp_path / "a", FP, DIM, database_url=database_url).close()
    with pytest.raises(EncoderMismatchError, match="PostgreSQL database"):
        ProductStore(tmp_path / "b", "0" * 64, DIM, database_url=database_url)
    with replica(tmp_path, database_url, "c") as other:
        assert other.fingerprint == FP and other.dim == DIM
    with pytest.raises(ValueError, match="mysql:... is not supported"):
        ProductStore(tmp_path / "d", FP, DIM, database_url="mysql://u:secret@host/db")
    closed_port = database_url.rsplit(":", 1)[0] + ":1/nothing"
    with pytest.raises(ConnectionError, match="cannot connect"):
        ProductStore(tmp_path / "e", FP, DIM, database_url=closed_port)


def test_maintenance_commands_work_on_postgres(
    store: ProductStore, database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store.add_products([product(i, unit(np.random.default_rng(i), 1)) for i in range(5)])
    parser = argparse.ArgumentParser()
    configure(parser)
    for action in ("check", "info"):
        args = parser.parse_args([action, "--store", str(tmp_path / "m"), "--database-url", database_url])
        assert maintenance_main(args) == 0
    out = capsys.readouterr().out
    assert "0 problem(s); 5 products, 5 images" in out and '"products": 5' in out


def test_a_dropped_connection_is_made_anew(store: ProductStore, database_url: str) -> None:
    """The server drops every connection (a restart, a failover): the next read still answers."""
    rng = np.random.default_rng(12)
    store.add_product(product(1, unit(rng, 1)))
    with psycopg.connect(database_url, autocommit=True) as admin:
        dropped = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    assert dropped and all(ok for (ok,) in dropped)  # the store's reading and writing connections
    assert store.count() == 1 and store.sync() == 0
    store.add_product(product(2, unit(rng, 1)))
    assert store.count() == 2 and faiss_ids(store) == db_image_ids(store)


# ---------------------------------------------------------------------- replicas
def test_a_replica_follows_adds_and_deletes(store: ProductStore, database_url: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    v = unit(rng, 4)
    with replica(tmp_path, database_url, "b") as b:
        first = store.add_products([product(i, v[i : i + 1]) for i in range(3)]).products
        assert b.vector_count() == 0  # not followed yet
        assert b.get_product(first[0].id) is not None  # metadata is the database's: at once
        assert b.sync() == 3 and b.sync() == 0
        top = b.search(v[1:2], k=1)[0][0]
        assert top.product.sku == "SKU-1" and top.score == pytest.approx(1.0, abs=1e-5)
        image = first[1].images[0]
        assert not (tmp_path / "b" / image.path).exists()
        assert b.image_file(image).read_bytes() == image_bytes(10)  # fetched from the database

        store.remove_product(first[1].id)
        b.add_product(product(3, v[3:4]))  # b's own write applies a's removal too
        assert faiss_ids(b) == db_image_ids(b)
        assert all(h.product.id != first[1].id for h in b.search(v[1:2], k=3)[0])
        assert store.sync() == 1 and faiss_ids(store) == faiss_ids(b)
        assert store.applied_seq == b.applied_seq
        assert check_store(b) == [] and check_store(store) == []


def test_a_writer_waiting_for_another_replica_holds_up_no_read(
    store: ProductStore, database_url: str, tmp_path: Path
) -> None:
    rng = np.random.default_rng(11)
    store.add_product(product(0, unit(rng, 1)))
    with replica(tmp_path, database_url, "b") as b, psycopg.connect(database_url, autocommit=True) as admin:
        with store.db.transaction():  # this replica holds the writer lock
            writer = threading.Thread(target=b.add_product, args=(product(1, unit(rng, 1)),))
            writer.start()
            waiting = "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            assert _eventually(lambda: admin.execute(waiting).fetchone() == (1,))
            reads: list[object] = []
            reader = threading.Thread(target=lambda: reads.extend([b.count(), b.get_by_sku("SKU-0")]))
            reader.start()
            reader.join(timeout=60)  # a read queued behind the waiting writer would never end here
            assert not reader.is_alive() and reads[0] == 1 and reads[1] is not None
        writer.join()
        assert b.count() == 2 and b.get_by_sku("SKU-1") is not None


def test_a_follower_thread_keeps_a_replica_in_step(
    store: ProductStore, database_url: str, tmp_path: Path
) -> None:
    v = unit(np.random.default_rng(9), 2)
    with replica(tmp_path, database_url, "b", sync_interval_s=0.05) as b:
        added = store.add_product(product(0, v[:1]))
        assert _eventually(lambda: b.vector_count() == 1)
        assert b.search(v[:1], k=1)[0][0].product.id == added.id
        store.remove_product(added.id)
        assert _eventually(lambda: b.vector_count() == 0)
    assert b._follower is not None and not b._follower._thread.is_alive()  # stopped by close()


def _eventually(condition, attempts: int = 600) -> bool:
    """Poll ``condition`` for up to ~60 s (a slow machine); a correct follower needs far less."""
    event = threading.Event()
    for _ in range(attempts):
        if condition():
            return True
        event.wait(0.1)
    return False


def test_concurrent_writers_on_two_replicas_lose_no_change(
    store: ProductStore, database_url: str, tmp_path: Path
) -> None:
    """Two replicas write at once while a third follows as fast as it can: change sequence numbers
    commit in order, so the follower never skips a change that committed late."""
    b, watcher = replica(tmp_path, database_url, "b"), replica(tmp_path, database_url, "w")
    rng = np.random.default_rng(10)
    vectors = unit(rng, 160)
    stop = threading.Event()
    errors: list[BaseException] = []

    def write(s: ProductStore, first: int) -> None:
        try:
            for i in range(first, first + 40):
                p = s.add_product(product(i, vectors[2 * i : 2 * i + 2]))
                if i % 5 == 0:
                    s.remove_product(p.id)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    def follow() -> None:
        while not stop.is_set():
            watcher.sync()

    follower = threading.Thread(target=follow)
    follower.start()
    writers = [threading.Thread(target=write, args=(s, first)) for s, first in ((store, 0), (b, 40))]
    for t in writers:
        t.start()
    for t in writers:
        t.join()
    stop.set()
    follower.join()
    assert errors == []
    for s in (store, b, watcher):
        s.sync()
        assert faiss_ids(s) == db_image_ids(s)
        assert s.vector_count() == 2 * 64
    assert store.repository.change_count() == 2 * 80 + 2 * 16  # adds, removals
    b.close()
    watcher.close()


# ---------------------------------------------------------------------- concurrent reads
def test_reads_on_postgresql_hold_up_no_other_read_and_survive_a_restart(
    store: ProductStore, database_url: str
) -> None:
    """Three reads held open at once each have their own connection (a fourth answers meanwhile);
    when the server then drops them all, the next read still answers on a new one."""
    rng = np.random.default_rng(13)
    store.add_product(product(1, unit(rng, 1)))
    inside, release = threading.Barrier(4), threading.Event()

    def long_read() -> None:
        with store.db.snapshot() as read:
            read.query("SELECT COUNT(*) FROM products")
            inside.wait(30)
            release.wait(30)

    readers = [threading.Thread(target=long_read, daemon=True) for _ in range(3)]
    for t in readers:
        t.start()
    inside.wait(30)  # all three hold a read open
    try:
        assert store.count() == 1
    finally:
        release.set()
        for t in readers:
            t.join(30)
    assert store.db._readers.idle >= 3  # type: ignore[attr-defined]
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    assert store.count() == 1


def test_a_timed_query_on_postgresql_is_stopped(store: ProductStore) -> None:
    with pytest.raises(QueryTimeout):
        store.db.timed_query("SELECT pg_sleep(30)", (), 0.05)
    assert store.db.timed_query("SELECT 1 AS one", (), 5)[0]["one"] == 1
    assert store.text_search("anything") == [] and store.count() == 0
