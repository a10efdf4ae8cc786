"""The product store's database on PostgreSQL: one catalog shared by several server replicas.

Differences from SQLite, all behind ``Database``: ``?`` placeholders become ``%s``; writers take a
transaction-scoped advisory lock first (one writer at a time across every replica, so change
sequence numbers commit in order and a replica replaying ``seq > N`` never skips one that commits
late); attributes are ``jsonb`` (filters use ``@>``); text search is a ``tsvector`` column (simple
words, accents folded with ``unaccent``, prefix queries, ``ts_rank``); image bytes are kept in the
database, so a replica can serve photos another one stored. Reads borrow a connection of their
own (``index.db.pool``), so one slow read holds up no other.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache, partial
from importlib import resources
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.pq import TransactionStatus
from psycopg.types.string import TextLoader

from index.db.base import Database, Queries, QueryTimeout, Transaction
from index.db.pool import ConnectionPool
from index.text_query import TextWord

WRITER_LOCK = 0x6C6F6F6B616C696B  # "lookalik": the advisory lock every writer holds until it commits


@lru_cache(maxsize=512)
def _pg(sql: str) -> str:
    """``?`` placeholders -> psycopg's ``%s`` (a literal ``%`` is doubled)."""
    return sql.replace("%", "%%").replace("?", "%s")


class _Row:
    """A result row reachable by column name and by position, like ``sqlite3.Row``."""

    __slots__ = ("_names", "_values")

    def __init__(self, values: Sequence[Any], names: dict[str, int]) -> None:
        self._values, self._names = values, names

    def __getitem__(self, key: int | str) -> Any:
        return self._values[self._names[key] if isinstance(key, str) else key]

    def __len__(self) -> int:
        return len(self._values)

    def keys(self) -> list[str]:
        return list(self._names)


def _rows(cursor: Any) -> Callable[[Sequence[Any]], _Row]:
    names = {column.name: i for i, column in enumerate(cursor.description or ())}
    return lambda values: _Row(values, names)


def _run(conn: psycopg.Connection[Any], sql: str, params: Sequence[Any]) -> list[Any]:
    cur = conn.execute(_pg(sql), params) if params else conn.execute(sql)
    return cur.fetchall() if cur.description else []


class _Tx:
    """The writer's view of its transaction, with ``?`` placeholders."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Any = (), /) -> Any:
        return self.conn.execute(_pg(sql), params) if params else self.conn.execute(sql)

    def executemany(self, sql: str, params: Any, /) -> Any:
        cur = self.conn.cursor()
        cur.executemany(_pg(sql), list(params))
        return cur


class _Reader(Queries):
    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return _run(self.conn, sql, params)


class PostgresDatabase(Database):
    """Reads borrow autocommit connections, one per concurrent reader; writes have their own
    (under ``write_lock``), so a writer waiting for another replica's writer holds up no search.
    A connection the server dropped is made anew."""

    dialect = "postgresql"
    integrity_errors = (psycopg.errors.IntegrityError,)

    def __init__(self, url: str) -> None:
        self.url = url
        info = conninfo_to_dict(url)
        self.location = (
            f"PostgreSQL database {info.get('dbname', '?')} on {info.get('host', 'localhost')}:"
            f"{info.get('port', 5432)}"
        )
        self.write_lock = threading.RLock()
        self._closed = False
        self._readers = ConnectionPool(
            partial(_connect, url, self.location),  # not a bound method: no reference cycle
            _close,
            _idle_and_open,
            closed_error=lambda: psycopg.OperationalError("the connection is closed"),
        )
        self._writer = _connect(url, self.location)
        schema = resources.files("index.db").joinpath("schema_postgres.sql").read_text()
        with self.transaction() as tx:
            tx.execute(schema)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """A read that finds its connection dropped (the server restarted, a failover) is run
        once more on a new connection."""
        for retry in (False, True):
            with self._readers.connection() as conn:
                try:
                    return _run(conn, sql, params)
                except psycopg.OperationalError:
                    if retry or not conn.closed:
                        raise
            self._readers.discard_idle()  # dropped by the same restart, most likely
        raise AssertionError("unreachable")

    def timed_query(self, sql: str, params: Sequence[Any], timeout_s: float) -> list[Any]:
        """``statement_timeout`` for this one statement (``SET LOCAL``, in its own transaction)."""
        with self._readers.connection() as conn:
            try:
                with conn.transaction():
                    ms = max(1, round(timeout_s * 1000))
                    conn.execute("SELECT set_config('statement_timeout', %s, true)", (f"{ms}ms",))
                    return _run(conn, sql, params)
            except psycopg.errors.QueryCanceled as exc:
                raise QueryTimeout(f"the query ran longer than {timeout_s:g} s") from exc

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        with self.write_lock:
            conn = self._begin()
            try:
                yield _Tx(conn)
            except BaseException:
                if not conn.closed:
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def _begin(self) -> psycopg.Connection[Any]:
        """BEGIN on the writing connection, then wait for the writer lock. A connection found
        dropped before anything was written is made anew, once."""
        for retry in (False, True):
            if self._writer.closed and not self._closed:
                self._writer = _connect(self.url, self.location)
            conn = self._writer
            try:
                conn.execute("BEGIN")
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITER_LOCK,))
                return conn
            except psycopg.OperationalError:
                if not conn.closed:
                    conn.execute("ROLLBACK")
                    raise
                if retry:
                    raise
        raise AssertionError("unreachable")

    @contextmanager
    def snapshot(self, own_connection: bool = False) -> Iterator[Queries]:
        """Every read borrows its own connection, so ``own_connection`` changes nothing here."""
        with self._readers.connection() as conn:
            try:
                with conn.transaction():
                    conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                    yield _Reader(conn)
            except psycopg.OperationalError:
                if conn.closed:  # the server dropped it: the idle ones too, most likely
                    self._readers.discard_idle()
                raise

    def text_search(
        self, words: Sequence[TextWord], where: str, params: Sequence[Any], k: int
    ) -> tuple[str, list[Any]]:
        # \w+ words: quoted, nothing else is syntax
        query = " & ".join(f"'{w.text}'" + (":*" if w.prefix else "") for w in words)
        return (
            "SELECT p.id, -ts_rank(p.search, q) AS rank FROM products p,"
            " to_tsquery('lookalike_text', ?) AS q"
            f" WHERE p.search @@ q AND {where} ORDER BY rank, p.id LIMIT ?",
            [query, *params, k],
        )

    def save_image_bytes(self, tx: Transaction, path: str, data: bytes) -> None:
        tx.execute(
            "INSERT INTO image_bytes (path, data) VALUES (?, ?) ON CONFLICT (path) DO NOTHING", (path, data)
        )

    def drop_unused_image_bytes(self, tx: Transaction, paths: Sequence[str]) -> None:
        if paths:
            tx.execute(
                "DELETE FROM image_bytes b WHERE b.path = ANY(?)"
                " AND NOT EXISTS (SELECT 1 FROM images i WHERE i.path = b.path)",
                (list(set(paths)),),
            )

    def image_bytes(self, path: str) -> bytes | None:
        data = self.scalar("SELECT data FROM image_bytes WHERE path = ?", (path,))
        return bytes(data) if data is not None else None

    def close(self) -> None:
        self._readers.close()
        with self.write_lock:
            self._closed = True
            self._writer.close()


def _connect(url: str, location: str) -> psycopg.Connection[Any]:
    try:
        conn = psycopg.connect(url, autocommit=True, row_factory=_rows)
    except psycopg.OperationalError as exc:
        raise ConnectionError(f"cannot connect to {location}: {exc}") from exc
    conn.adapters.register_loader("jsonb", TextLoader)  # attributes come back as JSON text
    return conn


def _close(conn: psycopg.Connection[Any]) -> None:
    conn.close()


def _idle_and_open(conn: psycopg.Connection[Any]) -> bool:
    """A connection worth keeping: open, and in no transaction."""
    return not conn.closed and conn.info.transaction_status == TransactionStatus.IDLE
