"""The store's writer lock holds across processes, and two stores open on one directory (as two
server workers have it) follow each other's writes through the change log."""

from __future__ import annotations

import fcntl
import multiprocessing
import os
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np
import pytest

from index import NewProduct, ProductStore
from index.write_lock import LOCK_NAME, StoreWriteLock
from ops.check import check_store
from tests.conftest import image_bytes

DIM = 8


def _hold(directory: str, held: Connection, release: Connection) -> None:
    with StoreWriteLock(Path(directory)):
        held.send(True)
        release.recv()


def _try_flock(path: Path) -> bool:
    """True when an exclusive flock on ``path`` is free right now (taken and let go)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def test_the_lock_holds_across_processes(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    held_out, held_in = ctx.Pipe()
    release_in, release_out = ctx.Pipe()
    child = ctx.Process(target=_hold, args=(str(tmp_path), held_in, release_out))
    child.start()
    try:
        assert held_out.recv()
        assert not _try_flock(tmp_path / LOCK_NAME)  # another process writes: this one waits
    finally:
        release_in.send(True)
        child.join(30)
    assert child.exitcode == 0
    assert _try_flock(tmp_path / LOCK_NAME)


def test_the_lock_is_released_on_error(tmp_path: Path) -> None:
    lock = StoreWriteLock(tmp_path)
    with pytest.raises(RuntimeError), lock:
        assert lock.locked() and not _try_flock(tmp_path / LOCK_NAME)
        raise RuntimeError("the write failed")
    assert not lock.locked() and _try_flock(tmp_path / LOCK_NAME)


def _vector(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(1, DIM)).astype(np.float32)
    return v / np.linalg.norm(v)


def test_two_stores_on_one_directory_follow_each_other(tmp_path: Path) -> None:
    with ProductStore(tmp_path, "fp", DIM) as a, ProductStore(tmp_path, "fp", DIM) as b:
        added = a.add_product(NewProduct("A-1", "one", images=(image_bytes(1),), embeddings=_vector(1)))
        assert b.search(_vector(1), 1) == [[]]  # b's FAISS has not followed yet
        assert b.sync() == 1
        assert [h.product.sku for h in b.search(_vector(1), 1)[0]] == ["A-1"]

        b.add_product(NewProduct("B-2", "two", images=(image_bytes(2),), embeddings=_vector(2)))
        assert b.remove_product(added.id)
        assert a.sync() == 2  # b's add, and the removal of a's own product
        assert [h.product.sku for h in a.search(_vector(1), 2)[0]] == ["B-2"]
        assert a.applied_seq == b.applied_seq
        a.snapshot()
        b.snapshot()  # both write the one snapshot file, one after the other
    with ProductStore(tmp_path) as reopened:
        assert check_store(reopened) == []
        assert reopened.vector_count() == reopened.image_count() == 1
