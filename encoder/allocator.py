"""glibc's allocator, set for a process that runs the model: big blocks stay in the heap.

By default glibc serves a block over its mmap threshold (128 KiB, raised up to 32 MiB as big
blocks come and go) with a mapping of its own and unmaps it on ``free``, and gives the top of the
heap back to the kernel past 128 KiB free. A forward allocates and frees each layer's activations,
so on every batch the kernel maps, zeroes and faults in those pages again: on the development
machine, 20,000 minor faults per image at batch 32 put more of the encoder's CPU time in the
kernel than in the model (docs/BENCHMARKS.md, "glibc's allocator").

``tune_allocator`` turns both off (``mallopt(M_MMAP_MAX, 0)``, ``mallopt(M_TRIM_THRESHOLD,
1 GiB)``): freed activations are reused from the heap by the next batch. The cost is memory: the
heap keeps its peak. Called first thing by ``lookalike build`` and ``train`` (``lookalike/cli.py``;
not by ``serve``, where no gain was measured); ``LOOKALIKE_MALLOC_TUNING=off``
leaves glibc's defaults, and so do the ``MALLOC_MMAP_MAX_`` / ``MALLOC_TRIM_THRESHOLD_`` variables
(or glibc tunables) when set: what the operator wrote wins.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
from collections.abc import Callable, Mapping

SETTING = "LOOKALIKE_MALLOC_TUNING"
TRIM_THRESHOLD = 1 << 30  # bytes free at the heap's top before glibc returns them
_M_TRIM_THRESHOLD = -1  # mallopt parameters, from glibc's malloc.h
_M_MMAP_MAX = -4
_OPERATOR_SET = ("MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_")


@functools.cache
def _mallopt() -> Callable[[int, int], int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    return getattr(libc, "mallopt", None)


def wanted(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the tuning applies: on unless ``LOOKALIKE_MALLOC_TUNING`` is false (as pydantic reads
    a bool: off, false, f, 0, no, n; ``app/config.py`` declares the setting), or the operator set
    glibc's own variables for these two settings."""
    if environ.get(SETTING, "on").strip().lower() in ("off", "false", "f", "0", "no", "n"):
        return False
    tunables = environ.get("GLIBC_TUNABLES", "")
    return not any(name in environ for name in _OPERATOR_SET) and "mmap_max" not in tunables


def tune_allocator() -> bool:
    """Keep big blocks in the heap (see the module); True when set here, False when off, left to
    the operator, or not glibc."""
    mallopt = _mallopt()
    if mallopt is None or not wanted():
        return False
    return bool(mallopt(_M_MMAP_MAX, 0) == 1 and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1)
