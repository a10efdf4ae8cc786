"""Read connections for concurrent readers: each read borrows a connection of its own.

One connection behind one lock made every search wait for the slowest read in progress (in
review, a text query of 32 one-letter prefixes took 0.6 s on 200k products, and every search
waited for it). SQLite in WAL mode and PostgreSQL both let several connections read at once, so
the pool lends each concurrent reader its own connection and keeps a few idle ones for the next
reads. Connections are lent, not tied to threads: the web server's worker threads come and go,
and a connection per dead thread would stay open until the store closes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

C = TypeVar("C")


class ConnectionPool(Generic[C]):
    """Lends connections made by ``connect``; one given back is kept for reuse while fewer than
    ``max_idle`` are idle and ``reusable`` says it is in a clean state, else closed by ``close``.
    Once the pool is closed, a read gets ``closed_error()`` (the driver's own error for a closed
    connection, so callers see what they saw with a single one)."""

    def __init__(
        self,
        connect: Callable[[], C],
        close: Callable[[C], None],
        reusable: Callable[[C], bool] = lambda _: True,
        max_idle: int = 8,
        closed_error: Callable[[], Exception] = lambda: RuntimeError("the database is closed"),
    ) -> None:
        self._connect, self._close, self._reusable = connect, close, reusable
        self._closed_error = closed_error
        self._max_idle = max_idle
        self._idle: list[C] = []
        self._lock = threading.Lock()
        self._closed = False

    @contextmanager
    def connection(self) -> Iterator[C]:
        """A connection for this reader alone until the block ends."""
        with self._lock:
            if self._closed:
                raise self._closed_error()
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = self._connect()
        try:
            yield conn
        finally:
            self._give_back(conn)

    def _give_back(self, conn: C) -> None:
        try:
            keep = self._reusable(conn)
        except Exception:
            keep = False
        with self._lock:
            keep = keep and not self._closed and len(self._idle) < self._max_idle
            if keep:
                self._idle.append(conn)
        if not keep:
            self._close(conn)

    @property
    def idle(self) -> int:
        with self._lock:
            return len(self._idle)

    def discard_idle(self) -> None:
        """Close the idle connections, e.g. after the server dropped one (it dropped them all)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            self._close(conn)

    def close(self) -> None:
        """Close the idle connections; those lent out are closed when given back."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            self._close(conn)
