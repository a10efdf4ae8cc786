"""Where a server's samples go under load: py-spy over `bench/serve_load.py`, summarised by part.

    pip install py-spy   # a profiler, not a project dependency (any environment on PATH)
    .venv/bin/python bench/serve_profile.py -- --arch mobilenet_v3_small --image-size 128 \\
        --concurrency 32 --requests 400
    .venv/bin/python bench/serve_profile.py --raw profile.txt   # summarise an earlier recording

Records ``py-spy record --subprocesses --format raw`` (collapsed stacks) of the load benchmark
(arguments after ``--``), then, for each `lookalike serve` process, prints the share of its
samples per part: encoder forward, decoding and preprocessing, FAISS and the store, HTTP in C
(uvloop / httptools), FastAPI and Starlette in Python, threads waiting, start-up imports.
Shares are of py-spy samples (threads sampled while py-spy judged them busy), not of CPU time:
`serve_load.py` reports the CPU time per search from the kernel.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

# (part, alternatives): a stack belongs to the first part with an alternative whose needles all
# occur in it (';'-joined frames); the order matters
PARTS: list[tuple[str, list[tuple[str, ...]]]] = [
    ("encoder forward", [("Embedder._run_batch", "forward")]),
    ("FAISS + store search", [("Embedder._run_batch", "search")]),
    ("batching thread, other", [("Embedder._run_batch",)]),
    ("decode + preprocess", [("Preprocessor.__call__",)]),
    ("threads waiting (anyio pool)", [("WorkerThread.run", "Queue.get")]),
    ("multipart parsing", [("multipart",)]),
    ("FastAPI / Starlette / app (Python)", [("starlette",), ("fastapi",), ("(app/",)]),
    ("start-up imports", [("importlib",)]),
    ("event loop + HTTP (uvloop, httptools: C)", [("Runner.run",)]),
    ("threads waiting (executor)", [("_worker (concurrent/futures/thread.py",)]),
]


def part_of(stack: str) -> str:
    for name, alternatives in PARTS:
        if any(all(n in stack for n in needles) for needles in alternatives):
            return name
    return "other"


def summarise(raw: Path) -> dict[str, Counter[str]]:
    """Samples per part for every profiled `lookalike serve` process, keyed by its pid."""
    by_process: dict[str, Counter[str]] = defaultdict(Counter)
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        processes = [f for f in frames if f.startswith("process ")]
        if not processes or "lookalike serve" not in processes[-1]:
            continue  # the load generator, or a line without a process
        pid = processes[-1].split(":")[0].removeprefix("process ")
        rest = ";".join(f for f in frames if not f.startswith("process "))
        by_process[pid][part_of(rest)] += int(count)
    return by_process


def record(serve_load_args: list[str], out: Path, rate: int) -> None:
    spy = shutil.which("py-spy")
    if spy is None:
        sys.exit("py-spy is not on PATH: pip install py-spy (in any environment)")
    bench = Path(__file__).with_name("serve_load.py")
    command = [spy, "record", "--subprocesses", "--rate", str(rate), "--format", "raw", "-o", str(out)]
    subprocess.run([*command, "--", sys.executable, str(bench), *serve_load_args], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--raw", type=Path, help="summarise this py-spy raw file instead of recording")
    parser.add_argument("--rate", type=int, default=100, help="py-spy samples per second")
    parser.add_argument("serve_load_args", nargs="*", help="arguments for bench/serve_load.py (after --)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        raw = args.raw
        if raw is None:
            raw = Path(tmp) / "profile.txt"
            record(args.serve_load_args, raw, args.rate)
        for pid, parts in summarise(raw).items():
            total = sum(parts.values())
            print(f"\nserver process {pid}: {total} samples\n\n| part | samples | share |\n|---|---|---|")
            for name, n in parts.most_common():
                print(f"| {name} | {n} | {100 * n / total:.1f} % |")


if __name__ == "__main__":
    main()
