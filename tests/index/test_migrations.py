"""The schema version a store records is read: older stores run the steps above it, in order,
and a store made by a newer lookalike is refused before anything is written."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from index import ProductStore, SchemaVersionError
from index.db import Repository, Transaction, migrations
from tests.index.conftest import DIM, FP, product, unit


def stored_version(store_dir: Path) -> str:
    with sqlite3.connect(store_dir / ProductStore.DB_NAME) as db:
        return db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]


def open_handles(path: Path) -> int:
    """How many file descriptors of this process point at ``path``."""
    count = 0
    for fd in Path("/proc/self/fd").iterdir():
        with contextlib.suppress(OSError):  # closed while listing
            count += os.readlink(fd) == str(path)
    return count


def set_version(store_dir: Path, version: int) -> None:
    with ProductStore(store_dir) as store:
        store.set_meta("schema_version", str(version))


def test_a_new_store_records_the_current_version(tmp_path: Path) -> None:
    ProductStore(tmp_path / "s", FP, DIM).close()
    assert stored_version(tmp_path / "s") == str(migrations.SCHEMA_VERSION)


def test_a_store_newer_than_the_code_is_refused_and_left_as_it_is(tmp_path: Path) -> None:
    with ProductStore(tmp_path / "s", FP, DIM) as store:
        store.add_product(product(1, unit(np.random.default_rng(0), 1)))
    newer = migrations.SCHEMA_VERSION + 1
    set_version(tmp_path / "s", newer)
    (tmp_path / "s" / ProductStore.SNAPSHOT_NAME).unlink()
    with pytest.raises(SchemaVersionError, match=f"schema version {newer}.*upgrade lookalike") as refused:
        ProductStore(tmp_path / "s")
    assert open_handles(tmp_path / "s" / ProductStore.DB_NAME) == 0  # though the traceback holds the store
    assert refused.value is not None and stored_version(tmp_path / "s") == str(newer)
    assert not (tmp_path / "s" / ProductStore.SNAPSHOT_NAME).exists()  # no FAISS built either


def test_the_steps_above_the_stored_version_run_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ProductStore(tmp_path / "s", FP, DIM).close()
    set_version(tmp_path / "s", 1)
    ran: list[int] = []

    def step(n: int) -> Callable[[Repository, Transaction], None]:
        return lambda repo, tx: ran.append(n)

    monkeypatch.setattr(migrations, "SCHEMA_VERSION", 4)
    monkeypatch.setattr(migrations, "STEPS", {2: step(2), 3: step(3), 4: step(4)})
    with ProductStore(tmp_path / "s") as store:
        assert ran == [2, 3, 4] and store.get_meta("schema_version") == "4"
    with ProductStore(tmp_path / "s"):
        assert ran == [2, 3, 4]  # nothing runs twice


def test_a_failed_step_keeps_the_version_it_reached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ProductStore(tmp_path / "s", FP, DIM).close()
    current, step = migrations.SCHEMA_VERSION, migrations.SCHEMA_VERSION + 1

    def broken(repo: Repository, tx: Transaction) -> None:
        repo.set_meta("half-done", "1", tx)
        raise RuntimeError(f"step {step} failed")

    monkeypatch.setattr(migrations, "SCHEMA_VERSION", step)
    monkeypatch.setattr(migrations, "STEPS", {**migrations.STEPS, step: broken})
    with pytest.raises(RuntimeError, match=f"step {step} failed"):
        ProductStore(tmp_path / "s")
    assert stored_version(tmp_path / "s") == str(current)
    monkeypatch.setattr(migrations, "STEPS", {**migrations.STEPS, step: lambda repo, tx: None})
    with ProductStore(tmp_path / "s") as store:
        assert store.get_meta("schema_version") == str(step) and store.get_meta("half-done") is None


def test_a_store_refused_for_its_options_leaves_no_database_open(tmp_path: Path) -> None:
    ProductStore(tmp_path / "s", FP, DIM).close()
    with pytest.raises(ValueError, match="duplicate_policy"):
        ProductStore(tmp_path / "s", duplicate_policy="sometimes")  # type: ignore[arg-type]
    assert open_handles(tmp_path / "s" / ProductStore.DB_NAME) == 0
