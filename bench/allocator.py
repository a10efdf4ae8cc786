"""glibc's allocator tuning (encoder/allocator.py) for serve, build and train: on vs off, one run.

    .venv/bin/python bench/allocator.py --train-data ../shared/data/clothing-small/train \
        --queries ../shared/data/clothing-small/test

Each job is the real command in a fresh process, once with the tuning (the default) and once with
``LOOKALIKE_MALLOC_TUNING=false``, the two alternating:

- build: ``lookalike build`` of the demo catalog (300 photos, the demo encoder) into a fresh store,
  with 0 and 2 loader workers;
- train: ``lookalike train`` (SimCLR, EfficientNet-Lite0, 160 px, batch 64) on ``--train-images``
  photos for one epoch, with 0 and 2 loader workers;
- serve: ``bench/serve_load.py`` (mobilenet_v3_small at 128 px, concurrency 32): its server is a
  real ``lookalike serve``; the server's CPU per search and peak RSS are the figures.

Build and train are measured from outside (``/usr/bin/time``: the process and its reaped loader
workers): wall time, CPU time (user and system), minor page faults and the peak RSS of the
largest process. On a shared machine the CPU time and the faults are the figures to compare:
other processes stretch the wall time, not the work done. The start-up (imports, model load) is
in every row alike.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = {"tuned (default)": {}, "glibc defaults": {"LOOKALIKE_MALLOC_TUNING": "false"}}
TIME_FORMAT = "TIMED %e %U %S %R %M"  # wall s, user s, system s, minor faults, peak RSS KiB


def timed(command: list[str], env: dict[str, str]) -> tuple[str, str]:
    """(the command's output, a Markdown cells string of its /usr/bin/time figures)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "LOOKALIKE_MALLOC"))}
    done = subprocess.run(
        ["/usr/bin/time", "-f", TIME_FORMAT, *command],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    wall, user, system, faults, rss = re.findall(r"^TIMED (.+)$", done.stderr, re.M)[-1].split()
    cells = (
        f"{float(wall):.1f} | {float(user):.1f} | {float(system):.1f} | {int(faults) / 1000:.0f}k | "
        f"{int(rss) / 1024:.0f}"
    )
    return done.stdout + done.stderr, cells


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--jobs", nargs="+", choices=("build", "train", "serve"), default=["build", "train", "serve"]
    )
    parser.add_argument("--catalog", default="demo/catalog.csv")
    parser.add_argument("--encoder", default="demo/encoder.pt")
    parser.add_argument("--train-data", default="../shared/data/clothing-small/train")
    parser.add_argument("--train-images", type=int, default=256)
    parser.add_argument("--queries", default="../shared/data/clothing-small/test")
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    lookalike = [sys.executable, "-m", "lookalike"]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if {"build", "train"} & set(args.jobs):
            head = "| job | loader workers | allocator | wall s | user s | system s | minor faults"
            head += " | peak RSS MiB |"
            print(head)
            print("|---|---|---|---|---|---|---|---|", flush=True)
        for job in ("build", "train"):
            if job not in args.jobs:
                continue
            for workers in (0, 2):
                for name, env in SETTINGS.items():
                    out = work / f"{job}-{workers}-{len(env)}"
                    if job == "build":
                        command = [*lookalike, "build", "--catalog", args.catalog, "--encoder", args.encoder]
                        command += ["--store", str(out), "--workers", str(workers), "--rerank", "off"]
                    else:
                        command = [
                            *lookalike,
                            "train",
                            "--data",
                            args.train_data,
                            "--limit",
                            str(args.train_images),
                        ]
                        command += ["--epochs", "1", "--batch-size", "64", "--image-size", "160"]
                        command += ["--freeze-blocks", "12", "--bn-eval", "--workers", str(workers)]
                        command += ["--out", str(out / "encoder.pt"), "--output-dir", str(out)]
                    command.append("--no-progress")
                    _, cells = timed(command, env)
                    print(f"| {job} | {workers} | {name} | {cells} |", flush=True)
        if "serve" in args.jobs:
            for name, env in SETTINGS.items():
                command = [sys.executable, "bench/serve_load.py", "--queries", args.queries]
                command += ["--concurrency", "32", "--requests", str(args.requests)]
                output, cells = timed(command, env)
                print(f"\nserve, {name}:")
                keep = ("ceiling", "| batched", "| unbatched", "server CPU", "server peak", "at concurrency")
                print("\n".join(line for line in output.splitlines() if line.startswith(keep)), flush=True)


if __name__ == "__main__":
    main()
