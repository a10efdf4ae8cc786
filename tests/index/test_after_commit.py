"""A committed write stands when FAISS fails to follow it: the store reports itself degraded,
retries in the background, and ends with exactly the stored vectors (none missing, none twice)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

import index.vectors.cache
from index import NewProduct, ProductStore
from index.vectors import ChangeBatch, read_snapshot
from tests.index.conftest import DIM, FP, unit

HANG = 60.0


def product(i: int, vectors: np.ndarray) -> NewProduct:
    return NewProduct(
        f"P{i}", f"Product {i}", "c", 1.0, {}, tuple(bytes([i, j]) for j in range(len(vectors))), vectors
    )


def wait_healthy(store: ProductStore) -> None:
    deadline = time.monotonic() + HANG
    while store.degraded is not None:
        assert time.monotonic() < deadline, store.degraded
        time.sleep(0.02)


def assert_in_step(store: ProductStore) -> None:
    held, dead = store.vector_ids()
    stored = store.repository.image_ids()
    assert held - dead == stored
    assert store.vector_count() == store.image_count() == len(stored)  # live vectors: none held twice


@pytest.mark.parametrize("force_tombstones", [False, True])
def test_a_batch_applied_in_part_is_reloaded_not_applied_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, force_tombstones: bool
) -> None:
    """FAISS takes the batch's removals and additions, then fails (as a GPU might midway): the
    write is acknowledged, and the retry rebuilds FAISS from the snapshot and the change log
    instead of adding the same vectors again."""
    rng = np.random.default_rng(3)
    with ProductStore(
        tmp_path / "s", FP, DIM, duplicate_policy="off", force_tombstones=force_tombstones
    ) as store:
        first = store.add_products([product(i, unit(rng, 2)) for i in range(5)]).products
        store.snapshot()
        real_apply = ChangeBatch.apply_to
        healed = threading.Event()

        def apply_then_fail(self: ChangeBatch, vectors) -> None:
            real_apply(self, vectors)
            if not healed.is_set():
                raise RuntimeError("GPU error after the vectors went in")

        monkeypatch.setattr(ChangeBatch, "apply_to", apply_then_fail)
        added = store.add_products([product(10, unit(rng, 3))]).products[0]  # no exception: committed
        assert store.get_product(added.id) is not None
        assert store.remove_product(first[0].id)
        assert store.degraded is not None
        healed.set()
        wait_healthy(store)
        assert_in_step(store)
        vector = store.repository.product_embeddings(added.id)[1][:1]
        assert store.search(vector, 1)[0][0].product.id == added.id
    with ProductStore(tmp_path / "s") as reopened:  # and what it saved on close is right too
        assert_in_step(reopened)
        assert reopened.count() == 5


def test_a_failed_snapshot_is_written_by_the_retry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(4)
    real_write = index.vectors.cache.write_snapshot
    healed = threading.Event()

    def full_disk(*args, **kwargs) -> None:
        if not healed.is_set():
            raise OSError(28, "No space left on device")
        real_write(*args, **kwargs)

    with ProductStore(tmp_path / "s", FP, DIM, snapshot_every=1) as store:
        monkeypatch.setattr(index.vectors.cache, "write_snapshot", full_disk)
        p = store.add_product(product(1, unit(rng, 1)))
        assert store.degraded is not None and store.get_product(p.id) is not None
        assert store.vector_count() == 1  # FAISS holds it: only the snapshot is owed
        healed.set()
        wait_healthy(store)
        assert read_snapshot(tmp_path / "s" / ProductStore.SNAPSHOT_NAME)[2] == store.applied_seq


def test_a_store_closed_while_degraded_replays_the_change_log_on_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(5)
    store = ProductStore(tmp_path / "s", FP, DIM, duplicate_policy="off")
    store.add_products([product(i, unit(rng, 1)) for i in range(3)])
    store.snapshot()
    real_apply = ChangeBatch.apply_to

    def apply_then_fail(self: ChangeBatch, vectors) -> None:
        real_apply(self, vectors)
        raise RuntimeError("GPU error")

    monkeypatch.setattr(ChangeBatch, "apply_to", apply_then_fail)
    store.add_products([product(9, unit(rng, 2))])
    assert store.degraded is not None
    store.close()  # no snapshot of the half-updated index
    monkeypatch.undo()
    with ProductStore(tmp_path / "s") as reopened:
        assert_in_step(reopened)
        assert reopened.count() == 4 and reopened.degraded is None
