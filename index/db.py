"""One SQLite connection shared by threads: WAL, foreign keys, full fsync, chunked ``IN`` queries."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

_IN_CHUNK = 500  # well under SQLite's limit on bound parameters


class Database:
    """Every statement runs under one re-entrant lock; ``transaction()`` is BEGIN IMMEDIATE..COMMIT."""

    def __init__(self, path: Path) -> None:
        self.lock = threading.RLock()
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        for pragma in ("journal_mode=WAL", "foreign_keys=ON", "synchronous=FULL", "busy_timeout=5000"):
            self._conn.execute(f"PRAGMA {pragma}")
        self._conn.executescript(resources.files("index").joinpath("schema.sql").read_text())

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self.lock:
            return self._conn.execute(sql, params).fetchall()

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        rows = self.query(sql, params)
        return rows[0][0] if rows else None

    def rows_in(self, sql: str, ids: Sequence[int | str], params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        """Run ``sql`` with its ``IN ({})`` filled by ``ids`` (after ``params``), in chunks."""
        rows: list[sqlite3.Row] = []
        for start in range(0, len(ids), _IN_CHUNK):
            chunk = list(ids[start : start + _IN_CHUNK])
            rows += self.query(sql.format(",".join("?" * len(chunk))), [*params, *chunk])
        return rows

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Commit on success, roll back on any exception; other threads wait meanwhile."""
        with self.lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def close(self) -> None:
        with self.lock:
            self._conn.close()
