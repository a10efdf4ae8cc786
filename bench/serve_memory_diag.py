"""`lookalike serve` with memory probes, to tell a leak from the allocator keeping freed memory.

    .venv/bin/python bench/serve_memory_diag.py serve --encoder demo/encoder.pt --store STORE &
    kill -USR1 PID    # append RSS, threads, Python objects by type, tensors (and tracemalloc's
                      # growth since the first dump) to $DIAG_OUT; glibc's malloc_stats to stderr
    kill -USR2 PID    # malloc_trim(0), and the RSS before and after

Environment: DIAG_OUT (default memory_diag.txt), DIAG_TRACEMALLOC=1 (trace Python allocations,
8 frames; slow), DIAG_TRIM_S=N (a malloc_trim every N s from a thread of its own, as tried
before app/memory.py did it). Used with bench/soak.py --url ... --pid PID for docs/BENCHMARKS.md,
"Memory under steady load".
"""

from __future__ import annotations

import collections
import ctypes
import gc
import os
import signal
import sys
import threading
import time
import tracemalloc
from pathlib import Path
from types import FrameType

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
libc = ctypes.CDLL("libc.so.6")
OUT = Path(os.environ.get("DIAG_OUT", "memory_diag.txt"))
TRACE = os.environ.get("DIAG_TRACEMALLOC") == "1"
TRIM_S = float(os.environ.get("DIAG_TRIM_S", "0"))
_first: list[tracemalloc.Snapshot] = []


def rss_mib() -> int:
    line = next(s for s in Path("/proc/self/status").read_text().splitlines() if s.startswith("VmRSS"))
    return int(line.split()[1]) // 1024


def dump(signum: int = 0, frame: FrameType | None = None) -> None:
    import torch

    objects = gc.get_objects()
    kinds = collections.Counter(type(o).__name__ for o in objects)
    tensors = [o for o in objects if isinstance(o, torch.Tensor)]
    lines = [
        f"=== {time.strftime('%H:%M:%S')} RSS {rss_mib()} MiB threads {len(os.listdir('/proc/self/task'))}",
        f"gc objects {len(objects)}; " + ", ".join(f"{k}={v}" for k, v in kinds.most_common(12)),
        f"tensors {len(tensors)}, {sum(t.element_size() * t.nelement() for t in tensors) / 2**20:.1f} MiB",
    ]
    if TRACE:
        snap = tracemalloc.take_snapshot()
        lines.append(f"tracemalloc current {tracemalloc.get_traced_memory()[0] / 2**20:.1f} MiB")
        if _first:
            lines += [f"  {s}" for s in snap.compare_to(_first[0], "lineno")[:15]]
        else:
            _first.append(snap)
    with OUT.open("a") as f:
        f.write("\n".join(lines) + "\n")
    sys.stderr.flush()
    libc.malloc_stats()  # per arena: system bytes (held) and in use bytes


def trim(signum: int = 0, frame: FrameType | None = None) -> None:
    before = rss_mib()
    libc.malloc_trim(0)
    with OUT.open("a") as f:
        f.write(f"=== malloc_trim(0): RSS {before} -> {rss_mib()} MiB\n")


def trim_every(seconds: float) -> None:
    while True:
        time.sleep(seconds)
        libc.malloc_trim(0)


if __name__ == "__main__":
    if TRACE:
        tracemalloc.start(8)
    if TRIM_S:
        threading.Thread(target=trim_every, args=(TRIM_S,), daemon=True).start()
    signal.signal(signal.SIGUSR1, dump)
    signal.signal(signal.SIGUSR2, trim)
    from lookalike.cli import main

    main(sys.argv[1:])
