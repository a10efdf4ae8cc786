"""glibc's allocator tuning is in effect in `lookalike build` and `train`, off when asked.

mallopt has no getter, so the test looks at what the setting does: in the real command's process
(started as ``lookalike <command> --help``, probed at exit), a 64 MiB ``malloc`` either gets a
mapping of its own (glibc's default: ``mallinfo2().hblkhd`` grows by it) or comes from the heap.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import re
import subprocess
import sys

import pytest

from encoder.allocator import wanted

BLOCK = 64 << 20  # over glibc's largest dynamic mmap threshold (32 MiB): mapped unless tuned
PROBE = f"""
import atexit, ctypes, os, runpy, sys

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
                 "fordblks", "keepcost")]

def probe():
    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = MallInfo2
    libc.malloc.restype = ctypes.c_void_p
    before = libc.mallinfo2().hblkhd
    block = libc.malloc({BLOCK})
    mapped = libc.mallinfo2().hblkhd - before
    libc.free(ctypes.c_void_p(block))
    sys.stdout.write(f"\\nmapped {{mapped}}\\nomp {{os.environ.get('OMP_WAIT_POLICY')}}\\n")
    sys.stdout.flush()

atexit.register(probe)
sys.argv = ["lookalike", *sys.argv[1:]]
runpy.run_module("lookalike", run_name="__main__")
"""

glibc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or not hasattr(glibc, "mallinfo2"), reason="glibc >= 2.33 only"
)


def probe(command: str, **env: str) -> str:
    """What the probe printed at the exit of ``lookalike <command> --help``."""
    drop = ("MALLOC_", "LOOKALIKE_MALLOC", "OMP_WAIT_POLICY")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, command, "--help"],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return done.stdout


def mapped_bytes(command: str, **env: str) -> int:
    """Bytes mapped for a 64 MiB block in the process of ``lookalike <command> --help``."""
    return int(re.findall(r"^mapped (\d+)$", probe(command, **env), re.M)[-1])


@pytest.mark.parametrize("command", ["build", "train"])
def test_big_blocks_come_from_the_heap_in_build_and_train(command: str) -> None:
    assert mapped_bytes(command) == 0


def test_the_setting_turns_it_off() -> None:
    assert mapped_bytes("build", LOOKALIKE_MALLOC_TUNING="false") >= BLOCK


@pytest.mark.parametrize("command", ["serve", "index"])
def test_the_other_commands_keep_glibc_defaults(command: str) -> None:
    assert mapped_bytes(command) >= BLOCK


def test_the_operators_own_glibc_variables_win() -> None:
    assert not wanted({"MALLOC_MMAP_MAX_": "65536"})
    assert not wanted({"GLIBC_TUNABLES": "glibc.malloc.mmap_max=65536"})
    assert not wanted({"LOOKALIKE_MALLOC_TUNING": "off"})
    assert wanted({}) and wanted({"LOOKALIKE_MALLOC_TUNING": "true"})


def test_openmp_threads_sleep_when_idle_unless_told_otherwise() -> None:
    """torch reads OMP_WAIT_POLICY when it loads; the command sets it first (the probe runs after)."""
    assert "\nomp PASSIVE\n" in probe("serve")
    assert "\nomp active\n" in probe("serve", OMP_WAIT_POLICY="active")
