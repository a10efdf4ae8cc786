"""The store's SQL database behind one small interface, and its embedded implementation (SQLite).

``Database`` is what ``ProductStore`` talks to: queries with ``?`` placeholders, a writer
transaction, a consistent read snapshot, and the few things the SQL dialects do differently
(text search, where image bytes live, integrity checks). ``SqliteDatabase`` (here: one file, WAL,
foreign keys, full fsync) is the default; ``index.postgres.PostgresDatabase`` lets several
server replicas share one catalog. Rows are read by column name or position. Reads borrow a
connection of their own (``index.pool``), so a slow read holds up no other.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from functools import partial
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar, Protocol

from index.pool import ConnectionPool
from index.text_query import TextWord

_IN_CHUNK = 500  # well under SQLite's limit on bound parameters
PROGRESS_STEPS = 1000  # SQLite virtual machine steps between two looks at a timed query's clock


class QueryTimeout(Exception):
    """A read that ran past its time limit and was stopped."""


class Transaction(Protocol):
    """What a write sees: ``execute`` returns a cursor (``rowcount``, ``fetchall``, iteration)."""

    def execute(self, sql: str, params: Any = (), /) -> Any: ...

    def executemany(self, sql: str, params: Any, /) -> Any: ...


class Queries(ABC):
    """Reads: ``query`` runs one statement; ``scalar`` and ``rows_in`` are built on it."""

    @abstractmethod
    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Rows of ``sql`` (``?`` placeholders), each indexable by column name and position."""

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        rows = self.query(sql, params)
        return rows[0][0] if rows else None

    def rows_in(self, sql: str, ids: Sequence[int | str], params: Sequence[Any] = ()) -> list[Any]:
        """Run ``sql`` with its ``IN ({})`` filled by ``ids`` (after ``params``), in chunks."""
        rows: list[Any] = []
        for start in range(0, len(ids), _IN_CHUNK):
            chunk = list(ids[start : start + _IN_CHUNK])
            rows += self.query(sql.format(",".join("?" * len(chunk))), [*params, *chunk])
        return rows


class Database(Queries):
    """A store's database: reads on connections lent to each reader, one writing connection,
    plus the dialect's differences. Writers are serialised: ``transaction()`` holds the
    database's writer lock from its start, so change sequence numbers are committed in their
    order. A read sees what was committed when it ran, not the open transaction of a writer."""

    dialect: ClassVar[str]
    location: str  # for messages: a file path, or a database without its password
    integrity_errors: tuple[type[Exception], ...]

    @abstractmethod
    def transaction(self) -> AbstractContextManager[Transaction]:
        """Commit on success, roll back on any exception; other writers wait meanwhile."""

    @abstractmethod
    def snapshot(self, own_connection: bool = False) -> AbstractContextManager[Queries]:
        """Reads that all see one committed state. ``own_connection`` for long reads, so other
        threads' statements go on meanwhile."""

    @abstractmethod
    def timed_query(self, sql: str, params: Sequence[Any], timeout_s: float) -> list[Any]:
        """``query``, stopped with ``QueryTimeout`` once it has run ``timeout_s`` seconds."""

    @abstractmethod
    def text_search(
        self, words: Sequence[TextWord], where: str, params: Sequence[Any], k: int
    ) -> tuple[str, list[Any]]:
        """SQL + parameters giving ``id`` and ``rank`` (lower is better) of the products
        (``p``, matching ``where``) holding every word of ``words``: whole words, or words they
        begin where ``prefix``."""

    def rebuild_text_index(self, tx: Transaction) -> None:
        """Fill the text index from the products (a store made before text search existed)."""

    def save_image_bytes(self, tx: Transaction, path: str, data: bytes) -> None:
        """Keep an image's bytes in the database too (where replicas share no disk)."""

    def drop_unused_image_bytes(self, tx: Transaction, paths: Sequence[str]) -> None:
        """Forget the kept bytes of ``paths`` no image row points at any more."""

    def image_bytes(self, path: str) -> bytes | None:
        """The kept bytes of ``path``; None when the database keeps no image bytes."""
        return None

    def integrity_problems(self) -> list[str]:
        """What the database itself finds wrong (damaged pages, dangling references)."""
        return []

    @abstractmethod
    def close(self) -> None: ...


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
        self._conn.executescript(resources.files("index").joinpath("schema.sql").read_text())
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


def open_database(sqlite_path: Path, url: str | None = None) -> Database:
    """PostgreSQL when ``url`` (``postgresql://...``) is given, else the SQLite file ``sqlite_path``."""
    if not url:
        return SqliteDatabase(sqlite_path)
    if not url.startswith(("postgresql://", "postgres://")):
        raise ValueError(
            f"database URL {url.partition(':')[0]}:... is not supported: give postgresql://user@host/db, "
            "or none for the embedded SQLite store"
        )
    try:
        from index.postgres import PostgresDatabase  # psycopg is only needed here
    except ImportError as exc:
        raise ValueError(
            f"a PostgreSQL store needs psycopg: pip install 'lookalike[postgres]'; {exc}"
        ) from exc
    return PostgresDatabase(url)
