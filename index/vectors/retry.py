"""Finishing in the background the FAISS work a committed write could not do.

A write is committed, and so acknowledged, before FAISS hears of it. When the catch-up after it
fails (a GPU error, a full disk under the snapshot), the write still stands: the client gets its
2xx, the store says it is degraded, and this thread tries again with growing pauses until the
catch-up succeeds (the next write, or a replica's sync, tries as well).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class BackgroundRetry:
    """Calls ``action`` on a daemon thread after ``trigger()``: first after ``first_delay_s``,
    then, while it raises, after pauses doubling up to ``max_delay_s``; stops once it returns
    (unless triggered again meanwhile) or on ``stop()``."""

    def __init__(
        self, action: Callable[[], None], name: str, first_delay_s: float = 0.5, max_delay_s: float = 30.0
    ) -> None:
        self.action, self.name = action, name
        self.first_delay_s, self.max_delay_s = first_delay_s, max_delay_s
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pending = False

    def trigger(self) -> None:
        """Make sure ``action`` runs (again) soon."""
        with self._lock:
            self._pending = True
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()

    def _run(self) -> None:
        delay = self.first_delay_s
        while not self._stop.wait(delay):
            with self._lock:
                self._pending = False
            try:
                self.action()
            except Exception:
                delay = min(2 * delay, self.max_delay_s)
                log.warning("%s failed; trying again in %.1f s", self.name, delay, exc_info=True)
                continue
            with self._lock:
                if not self._pending:
                    self._thread = None
                    return
            delay = self.first_delay_s

    @property
    def running(self) -> bool:
        with self._lock:
            return self._thread is not None

    def stop(self, timeout: float = 30.0) -> None:
        """Stop after the attempt in progress, if any."""
        self._stop.set()
        with self._lock:
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
