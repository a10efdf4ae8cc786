"""The store's writer lock: one writer at a time among the threads of a process and among the
processes that open the same store directory (``lookalike serve --workers N``).

SQLite already lets one transaction write at a time, but a write is more than its transaction:
image files are written before it and dropped after it when no row points at them, and the FAISS
snapshot is written beside the database. Holding this lock around the whole write keeps another
process from dropping a file a write is about to reference, and from writing the snapshot at the
same moment. It is a ``threading.Lock`` taken first (threads of one process queue there) and then
an exclusive ``flock`` on ``.write.lock`` in the store directory (released by the kernel when a
process dies, so a killed worker never leaves the store locked).
"""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path
from types import TracebackType

LOCK_NAME = ".write.lock"


class StoreWriteLock:
    """``with lock:`` holds the store's writes for this thread alone, across processes too.
    Not re-entrant, like ``threading.Lock``."""

    def __init__(self, directory: Path) -> None:
        self.path = Path(directory) / LOCK_NAME
        self._thread_lock = threading.Lock()
        self._fd: int | None = None

    def __enter__(self) -> StoreWriteLock:
        self._thread_lock.acquire()
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except BaseException:
                os.close(fd)
                raise
        except BaseException:
            self._thread_lock.release()
            raise
        self._fd = fd
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        fd, self._fd = self._fd, None
        try:
            if fd is not None:
                os.close(fd)  # closing the only descriptor releases the flock
        finally:
            self._thread_lock.release()

    def locked(self) -> bool:
        """Held by a thread of this process (what ``threading.Lock.locked`` says)."""
        return self._thread_lock.locked()
