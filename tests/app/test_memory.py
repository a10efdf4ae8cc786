"""The allocator measures of app/memory.py, each in a fresh process (glibc fixes its arena limit
when a second thread first allocates, so it cannot be tried twice in one process)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from app.memory import _glibc

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(_glibc() is None, reason="glibc's allocator only")

THREADS = """
import ctypes, threading
together = threading.Barrier(8)  # all hold their blocks at once: none reuses a finished arena
def work():  # blocks above pymalloc's 512 bytes: they come from this thread's malloc arena
    keep = [bytearray(4096) for _ in range(2000)]
    together.wait()
    del keep
threads = [threading.Thread(target=work) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
ctypes.CDLL("libc.so.6").malloc_stats()  # one "Arena N:" block per arena, on stderr
"""


def run(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        env={**environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


def arenas(stderr: str) -> int:
    return sum(line.startswith("Arena ") for line in stderr.splitlines())


def test_eight_allocating_threads_share_two_arenas_after_limit_arenas() -> None:
    unlimited = run(THREADS)
    limited = run("from app.memory import limit_arenas\nassert limit_arenas()\n" + THREADS)
    assert arenas(unlimited.stderr) > 2  # the default: a new arena for each thread, up to 8 per core
    assert arenas(limited.stderr) == 2


def test_limit_arenas_leaves_an_explicit_malloc_arena_max_alone() -> None:
    done = run(
        "from app.memory import limit_arenas\nassert not limit_arenas()\n" + THREADS, MALLOC_ARENA_MAX="3"
    )
    assert arenas(done.stderr) <= 3


def test_release_free_memory_returns_freed_pages_held_in_the_heap() -> None:
    """Every other 64 KB block freed: nothing at the heap's top is free, so glibc keeps all of it
    resident until ``malloc_trim`` hands back the free pages in the middle."""
    done = run(
        """
        from pathlib import Path
        from app.memory import release_free_memory

        def rss_mib():
            status = Path("/proc/self/status").read_text().splitlines()
            return int(next(s for s in status if s.startswith("VmRSS")).split()[1]) / 1024

        blocks = [bytearray(64_000) for _ in range(4_000)]  # 256 MB, under the mmap threshold
        del blocks[::2]
        before = rss_mib()
        assert release_free_memory()
        print(before - rss_mib())
        """
    )
    assert float(done.stdout) > 80  # of the 128 MB freed
