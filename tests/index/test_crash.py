"""Crash safety with real processes: a writer killed with SIGKILL at random moments loses nothing."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from index import ProductStore
from ops.check import check_store
from tests.index.crash_writer import DIM, FINGERPRINT, features_of, vector_of

ROUNDS = 12
ROOT = Path(__file__).resolve().parents[2]


def run_until_killed(directory: Path, first: int, force_tombstones: bool, rng: random.Random) -> list[str]:
    """Start a writer, SIGKILL it after a random delay once it is adding; its acknowledged lines."""
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.index.crash_writer",
            str(directory),
            str(first),
            str(int(force_tombstones)),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "ready"
    first = child.stdout.readline()  # its first acknowledged add: a busy machine may take a while
    time.sleep(rng.uniform(0.02, 0.5))
    child.send_signal(signal.SIGKILL)
    # read() through the same buffered file: readline() may already hold later lines, which
    # communicate() would skip (it reads the pipe's descriptor directly)
    out = first + child.stdout.read()
    child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    return out.splitlines()


def test_sigkilled_writer_loses_no_acknowledged_change(tmp_path: Path) -> None:
    rng = random.Random(1234)
    directory = tmp_path / "store"
    added: set[str] = set()
    removed: set[str] = set()
    maybe_added: set[str] = set()  # the change in flight when a writer was killed may or may not
    maybe_removed: set[str] = set()  # have committed; nothing else is uncertain
    next_index = 0
    for round_ in range(ROUNDS):
        lines = run_until_killed(directory, next_index, force_tombstones=round_ % 2 == 1, rng=rng)
        for line in lines:
            op, sku = line.split()
            (added if op == "added" else removed).add(sku)
        assert any(line.startswith("added") for line in lines), "the writer was killed before any add"
        op, sku = lines[-1].split()
        last = int(sku[1:])
        if op == "added":
            maybe_added.add(f"P{last + 1}")
            if last % 4 == 3:
                maybe_removed.add(f"P{last - 2}")
        else:
            maybe_added.add(f"P{last + 3}")
        next_index = max(int(s[1:]) for s in added) + 2  # never reuse the sku that was in flight

        with ProductStore(directory) as store:
            assert check_store(store) == [], f"round {round_}"
            for sku in sorted(added - removed - maybe_removed):
                product = store.get_by_sku(sku)
                assert product is not None, f"round {round_}: acknowledged {sku} is lost"
                top = store.search(vector_of(int(sku[1:])), k=1)[0]
                assert top and top[0].product.sku == sku, f"round {round_}: {sku} is not searchable"
                local = store.local.search(features_of(int(sku[1:])), 1)
                assert local is not None and list(local.image_ids) == [product.images[0].id], (
                    f"round {round_}: {sku} is not in the local index"
                )
            for sku in removed:
                assert store.get_by_sku(sku) is None, f"round {round_}: removed {sku} came back"
            stored = {p.sku for p in store.list_products(limit=10_000)}
            assert stored <= added | maybe_added, f"round {round_}: {stored - added} appeared from nowhere"
            assert store.vector_count() == store.image_count() == len(stored) == len(store.local)
            assert store.dim == DIM and store.fingerprint == FINGERPRINT
