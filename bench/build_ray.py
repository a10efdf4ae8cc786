"""Catalog build on Ray Data with 1, 2, ... workers vs the single-process build, same catalog, one run.

    .venv/bin/python bench/build_ray.py --catalog demo/catalog.csv --encoder demo/encoder.pt \
        --limit 300 --workers 1 2 --repeats 2

Single = ``ops.build.embed_catalog`` (DataLoader workers decode, the main process embeds with
all torch threads); Ray = ``ops.build_ray.embed_catalog_ray`` on a local Ray started here (one
logical CPU per machine core, no dashboard, a small object store), an actor pool of N encoders
with one torch thread each. Each build writes into a fresh temporary store and is timed from the
call to the last stored batch. ``total`` = images / that time, start-up included (Ray: the
dataset's start and every actor importing torch and building its model). Start-up is a fixed
cost, so each setting also builds the catalog's first ``batch size x most workers`` products
(one batch per actor): ``marginal`` = (images of the full build - of the short one) / (time of
the full build - of the short one), the rate a long catalog approaches, and ``fixed`` = the short
build's time less its images at that rate. ``CPU ms/img`` = CPU time of this process and every
process under it (loader workers; Ray's raylet, GCS and actors), read from /proc, per image
between the short and the full build: what an image costs whatever else the machine runs, so
cores / that = the marginal rate on an otherwise idle machine. Settings alternate within each
repeat, so a busy spell on a shared machine hits them all.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

import torch

from encoder import Encoder, encoder_fingerprint, load_encoder
from encoder.catalog import CatalogItem, read_catalog
from index.store import ProductStore
from ops.build import embed_catalog
from ops.build_ray import embed_catalog_ray
from ops.build_report import BuildReport


def tree_ticks() -> dict[tuple[int, int], int]:
    """CPU clock ticks (user + system, own + reaped children) of this process and every process
    under it, keyed by (pid, start time), from Linux /proc."""
    parents, ticks = {}, {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        pid = int(stat.parent.name)
        parents[pid] = int(fields[1])
        ticks[pid, int(fields[19])] = sum(int(v) for v in fields[11:15])  # utime stime cutime cstime
    me, mine = os.getpid(), {}
    for (pid, start), n in ticks.items():
        ancestor = pid
        while ancestor not in (me, 0, 1) and ancestor in parents:
            ancestor = parents[ancestor]
        if ancestor == me:
            mine[pid, start] = n
    return mine


class TreeCpu:
    """``with TreeCpu() as cpu: ...`` then ``cpu.seconds``: CPU time of the process tree meanwhile.

    Sampled every ``interval`` s, so a process that ends inside the block (Ray stops its actors
    when a dataset is done and does not reap them into the raylet's children times) keeps what it
    had spent at its last sample.
    """

    def __init__(self, interval: float = 0.25) -> None:
        self.interval, self.seconds = interval, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.last.update(tree_ticks())

    def __enter__(self) -> TreeCpu:
        self.before = tree_ticks()
        self.last = dict(self.before)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.last.update(tree_ticks())
        ticks = sum(n - self.before.get(key, 0) for key, n in self.last.items())
        self.seconds = ticks / os.sysconf("SC_CLK_TCK")


def timed_build(
    encoder: Encoder, items: list[CatalogItem], how: str, workers: int, batch_size: int
) -> tuple[float, float]:
    """(seconds from the call to the last stored batch, CPU seconds of the process tree meanwhile),
    building ``items`` into a fresh store."""
    with tempfile.TemporaryDirectory(prefix="lookalike-bench-") as tmp:
        store = ProductStore(Path(tmp) / "store", encoder_fingerprint(encoder), encoder.config.embed_dim)
        try:
            with TreeCpu() as cpu:
                started = time.perf_counter()
                report: BuildReport
                if how == "single":
                    report = embed_catalog(encoder, store, items, batch_size, workers, progress=False)
                else:
                    report = embed_catalog_ray(
                        encoder, store, items, workers, batch_size, "cpu", progress=False
                    )
                seconds = time.perf_counter() - started
        finally:
            store.close()
    if report.failures or report.images != sum(len(i.image_paths) for i in items):
        raise SystemExit(f"the catalog has unreadable images: {report.failures[:3]}")
    return seconds, cpu.seconds


def load_average() -> str:
    """The machine's 1-minute load average (other jobs share it), or ? where it cannot be read."""
    try:
        return f"{os.getloadavg()[0]:.1f}"
    except OSError:
        return "?"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--catalog", default="demo/catalog.csv", help="folder, CSV or Parquet")
    parser.add_argument("--encoder", default="demo/encoder.pt")
    parser.add_argument("--limit", type=int, default=300, help="first N products of the catalog")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="Ray actor pool sizes")
    parser.add_argument("--loader-workers", type=int, default=2, help="the single-process build's")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--object-store-mb", type=int, default=200)
    args = parser.parse_args()

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    encoder = load_encoder(args.encoder)
    items = read_catalog(args.catalog)[: args.limit]
    images = sum(len(i.image_paths) for i in items)
    cpus = os.cpu_count() or 1
    ray.init(
        num_cpus=cpus,
        include_dashboard=False,
        object_store_memory=args.object_store_mb << 20,
        log_to_driver=False,
    )
    print(
        f"{encoder.config.arch} at {encoder.config.image_size} px on cpu, batch {args.batch_size}, "
        f"{len(items)} products / {images} images from {args.catalog}, {cpus} CPUs; single-process: "
        f"{torch.get_num_threads()} torch threads, {args.loader_workers} loader workers; Ray: {cpus} CPUs, "
        f"1 torch thread per actor",
        flush=True,
    )
    short = items[: args.batch_size * max(args.workers)]
    n_short = sum(len(i.image_paths) for i in short)
    settings = [("single", args.loader_workers)] + [("ray", w) for w in args.workers]
    results: dict[tuple[str, int], list[tuple[float, float, float, float]]] = {s: [] for s in settings}
    try:
        for _ in range(args.repeats):
            for how, workers in settings:
                t_short, cpu_short = timed_build(encoder, short, how, workers, args.batch_size)
                t_full, cpu_full = timed_build(encoder, items, how, workers, args.batch_size)
                marginal = (images - n_short) / max(t_full - t_short, 1e-9)
                fixed = t_short - n_short / marginal
                cpu_ms = 1000 * (cpu_full - cpu_short) / (images - n_short)
                results[how, workers].append((images / t_full, marginal, fixed, cpu_ms))
                print(
                    f"  {how} {workers}: {n_short} images in {t_short:.1f} s, {images} in {t_full:.1f} s: "
                    f"total {images / t_full:.1f} img/s, marginal {marginal:.1f} img/s, fixed {fixed:.1f} s, "
                    f"{cpu_ms:.0f} CPU ms/img; load average {load_average()}",
                    flush=True,
                )
    finally:
        ray.shutdown()

    def cell(values: list[float]) -> str:
        return f"{statistics.median(values):.1f} ({', '.join(f'{v:.1f}' for v in values)})"

    print("median (runs)")
    print(
        "| build | workers | total img/s | marginal img/s | fixed s | CPU ms/img |\n|---|---|---|---|---|---|"
    )
    for (how, workers), runs in results.items():
        label = "single process" if how == "single" else "Ray Data actor pool"
        kind = f"{workers} loader" if how == "single" else f"{workers} actor{'s' if workers > 1 else ''}"
        columns = [cell([r[k] for r in runs]) for k in range(4)]
        print(f"| {label} | {kind} | {' | '.join(columns)} |")


if __name__ == "__main__":
    main()
