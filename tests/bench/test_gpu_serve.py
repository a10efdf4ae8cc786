"""The CPU dry run of bench/gpu_serve.sh: the whole script (wheel check, build, servers with 1 and 2
workers, 2 client processes, the table) on a tiny model and load, so it is ready for a GPU."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_gpu_serve_dry_run_prints_a_row_per_worker_count() -> None:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("OUT", None)
    run = subprocess.run(
        ["bash", "bench/gpu_serve.sh", "--dry-run"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    rows = re.findall(
        r"^\| mobilenet_v3_small@64 \| (\d+) \| 2 x 2 \| ([\d,]+) \| [\d.]+ \| [\d.]+ \| (\d+) \|",
        run.stdout,
        re.M,
    )
    assert [workers for workers, _, _ in rows] == ["1", "2"], run.stdout
    assert all(errors == "0" for _, _, errors in rows), run.stdout  # p50 a number: answers came
