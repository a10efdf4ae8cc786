"""ChangeFollower: keeps a store's FAISS index in step with writes other replicas commit.

Several servers sharing one PostgreSQL database each hold their own FAISS copy. Each store runs
a follower that calls ``ProductStore.sync()`` every ``interval_s``: one cheap query when nothing
changed, else the new changes applied in sequence order. A failure (the database restarting) is
logged once and retried at the next tick.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class ChangeFollower:
    """A daemon thread calling ``sync`` (which returns the number of changes it applied) every
    ``interval_s`` seconds until ``stop()``."""

    def __init__(self, sync: Callable[[], int], interval_s: float = 1.0) -> None:
        if not interval_s > 0:
            raise ValueError(f"the sync interval must be > 0 seconds, not {interval_s}")
        self.sync, self.interval_s = sync, interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lookalike-sync", daemon=True)
        self.failing = False  # the last sync failed

    def start(self) -> ChangeFollower:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                applied = self.sync()
            except Exception:  # the database away for a moment: say so once, try again next tick
                if not self.failing:
                    log.exception("following the change log failed; retrying every %.1f s", self.interval_s)
                self.failing = True
                continue
            if self.failing:
                log.info("following the change log again")
            self.failing = False
            if applied:
                log.debug("applied %d changes from other writers", applied)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop after the sync in progress, if any; call before closing the store."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
