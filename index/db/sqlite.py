"""The store's database embedded in one SQLite file: WAL, foreign keys, full fsync.

Reads borrow a connection of their own (``index.db.pool``), so a slow read holds up no other; the
one writing connection sits behind a re-entrant lock. ``copy_database`` is SQLite's online
backup, for ``lookalike index backup``.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from functools import partial
from importlib import resources
from pathlib import Path
from typing import Any

from index.db.base import Database, Queries, QueryTimeout, Transaction
from index.db.pool import ConnectionPool
from index.text_query import TextWord

PROGRESS_STEPS = 1000  # SQLite virtual machine steps between two looks at a timed query's clock


class SqliteDatabase(Database):
    """Writes on one connection under a re-entrant lock (``transaction()`` is BEGIN
    IMMEDIATE..COMMIT); reads on connections of their own, one per concurrent reader (WAL lets
    them read while the writer writes)."""

    dialect = "sqlite"
    integrity_errors = (sqlite3.IntegrityError,)

    def __init__(self, path: Path) -> None:
        self.path, self.location = path, str(path)
        self.lock = threading.RLock()  # the writer's
        self._conn = _connect(path)
        self._conn.executescript(resources.files("index.db").joinpath("schema.sql").read_text())
        self._readers = ConnectionPool(
            partial(_connect, path),  # not a bound method: the database is freed without the GC
            _close,
            lambda c: not c.in_transaction,
            closed_error=lambda: sqlite3.ProgrammingError("Cannot operate on a closed database."),
        )

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._readers.connection() as conn:
            return conn.execute(sql, params).fetchall()

    def timed_query(self, sql: str, params: Sequence[Any], timeout_s: float) -> list[Any]:
        """The connection's progress handler looks at the clock every ``PROGRESS_STEPS`` steps
        and interrupts the statement once ``timeout_s`` has passed."""
        deadline = time.monotonic() + timeout_s
        stopped: list[bool] = []

        def progress() -> bool:
            if _expired(deadline):
                stopped.append(True)
                return True
            return False

        with self._readers.connection() as conn:
            conn.set_progress_handler(progress, PROGRESS_STEPS)
            try:
                return conn.execute(sql, params).fetchall()
            except sqlite3.OperationalError as exc:
                if stopped:  # "interrupted", or another message when it stopped inside FTS5
                    raise QueryTimeout(f"the query ran longer than {timeout_s:g} s") from exc
                raise
            finally:
                conn.set_progress_handler(None, 0)

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        with self.lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    @contextmanager
    def snapshot(self, own_connection: bool = False) -> Iterator[Queries]:
        """Every read borrows its own connection, so ``own_connection`` changes nothing here."""
        with self._readers.connection() as conn:
            conn.execute("BEGIN")  # WAL: this reader sees one state while writers go on
            try:
                yield _SqliteReader(conn)
            finally:
                conn.execute("COMMIT")

    def text_search(
        self, words: Sequence[TextWord], where: str, params: Sequence[Any], k: int
    ) -> tuple[str, list[Any]]:
        # quoted \w+ words: no FTS syntax from the client
        match = " ".join(f'"{w.text}"' + ("*" if w.prefix else "") for w in words)
        return (
            "SELECT p.id, bm25(products_text) AS rank FROM products_text"
            " JOIN products p ON p.id = products_text.rowid"
            f" WHERE products_text MATCH ? AND {where} ORDER BY rank LIMIT ?",
            [match, *params, k],
        )

    def rebuild_text_index(self, tx: Transaction) -> None:
        tx.execute("INSERT INTO products_text (products_text) VALUES ('rebuild')")

    def integrity_problems(self) -> list[str]:
        problems = [f"sqlite: {r[0]}" for r in self.query("PRAGMA integrity_check") if r[0] != "ok"]
        return problems + [
            f"sqlite: row {r[1]} of {r[0]} points at a missing {r[2]}"
            for r in self.query("PRAGMA foreign_key_check")
        ]

    def close(self) -> None:
        self._readers.close()
        with self.lock:
            self._conn.close()


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    conn.row_factory = sqlite3.Row
    for pragma in ("journal_mode=WAL", "foreign_keys=ON", "synchronous=FULL", "busy_timeout=5000"):
        conn.execute(f"PRAGMA {pragma}")
    return conn


def _expired(deadline: float) -> bool:
    """The progress handler's question: a true answer interrupts the statement."""
    return time.monotonic() > deadline


def _close(conn: sqlite3.Connection) -> None:
    conn.close()


class _SqliteReader(Queries):
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return self.conn.execute(sql, params).fetchall()


def copy_database(source: Path, target: Path) -> None:
    """Copy the SQLite file ``source`` to ``target`` with the online backup API: one consistent
    state, including what is still in the write-ahead log, while writers go on; the copy is
    checked with SQLite's integrity check (``ValueError`` when it fails)."""
    src = sqlite3.connect(f"file:{source}?mode=rw", uri=True, timeout=30)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)  # all pages in one step: one consistent state
        dst.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        problems = [r[0] for r in dst.execute("PRAGMA integrity_check") if r[0] != "ok"]
        if problems:
            found = "; ".join(problems[:5])
            raise ValueError(f"the copy of {source} fails SQLite's integrity check: {found}")
    finally:
        dst.close()
        src.close()


def copied_files(path: Path) -> tuple[list[tuple[str, str]], int]:
    """(distinct (image path, content hash) pairs, number of products) of the SQLite file
    ``path`` (a backup's copy), read without changing it."""
    with closing(sqlite3.connect(path)) as copy:
        files = [(r[0], r[1]) for r in copy.execute("SELECT DISTINCT path, content_hash FROM images")]
        products = int(copy.execute("SELECT count(*) FROM products").fetchone()[0])
    return files, products
