"""Keeping the server's resident memory flat under steady load (glibc's allocator; no-ops elsewhere).

Under load, memory the server has freed stays resident: glibc gives each thread that allocates
under contention an arena of its own (up to 8 per core: 16 on 2 cores, with ~48 threads here
for decoding, the encoder and the request thread pool), and freed chunks in the middle of an
arena's heap are never returned to the system. Measured on the demo (docs/BENCHMARKS.md, "Memory
under steady load"): Python objects and tensors stayed flat while glibc held ~650 MB for ~280 MB
in use, and one ``malloc_trim(0)`` gave back ~310 MiB. Hence two measures: at most
``ARENAS`` arenas (set before any thread starts, or glibc ignores it) and a ``malloc_trim(0)``
every ``TRIM_INTERVAL_S`` seconds, which returns the free pages of every arena to the system.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import functools
import logging
import os
import time

from starlette.concurrency import run_in_threadpool

log = logging.getLogger("lookalike")
ARENAS = 2
TRIM_INTERVAL_S = 30.0
_M_ARENA_MAX = -8  # mallopt parameter, from glibc's malloc.h


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None


def limit_arenas(arenas: int = ARENAS) -> bool:
    """Cap glibc's malloc arenas unless ``MALLOC_ARENA_MAX`` (or a glibc tunable) already says how
    many. Call first thing in the process: glibc fixes the limit when a second thread first
    allocates. True when the cap was set here."""
    if "MALLOC_ARENA_MAX" in os.environ or "arena_max" in os.environ.get("GLIBC_TUNABLES", ""):
        return False
    libc = _glibc()
    return bool(libc and libc.mallopt(_M_ARENA_MAX, arenas) == 1)


def release_free_memory() -> bool:
    """Return the allocator's free pages to the system (``malloc_trim(0)``); False without glibc."""
    libc = _glibc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True


async def release_periodically(interval_s: float = TRIM_INTERVAL_S) -> None:
    """``release_free_memory`` every ``interval_s`` seconds, off the event loop, until cancelled."""
    if _glibc() is None:
        return
    while True:
        await asyncio.sleep(interval_s)
        started = time.perf_counter()
        await run_in_threadpool(release_free_memory)
        log.debug("malloc_trim took %.1f ms", (time.perf_counter() - started) * 1000)
