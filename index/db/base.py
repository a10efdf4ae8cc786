"""The interface both SQL dialects implement: reads, one writer's transaction, a read snapshot.

``Database`` is what the repository (``index.db.repository``) talks to: queries with ``?``
placeholders, a writer transaction, a consistent read snapshot, and the few things the dialects
do differently (text search, where image bytes live, integrity checks). ``index.db.sqlite`` is
the embedded default; ``index.db.postgres`` lets several server replicas share one catalog.
Rows are read by column name or position.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any, ClassVar, Protocol

from index.text_query import TextWord

_IN_CHUNK = 500  # well under SQLite's limit on bound parameters


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
