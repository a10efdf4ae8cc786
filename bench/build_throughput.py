"""Catalog build throughput vs the raw encoder on the same model and batch size, in one run.

    .venv/bin/python bench/build_throughput.py --catalog demo/catalog.csv --encoder demo/encoder.pt \
        --batch-size 32 --workers 0 1 2 --repeats 3

Raw = ``encoder.embed`` on (B, 3, S, S) tensors already in memory, as many images as the catalog
holds and in the same batch shapes: the ceiling. Build = ``ops.build.embed_catalog`` on the real
catalog into a fresh temporary store (read, decode and preprocess in DataLoader workers, embed,
write images, SQLite and FAISS), timed over the embedding phase: model load, store open and the
final FAISS snapshot are left out. Ratio >= 0.9 means the pipeline around the model costs <= 10 %.

The machine may be shared, so the runs alternate (raw, build, raw, build, ..., raw), each build
is compared with the mean of the raw runs on either side of it, and the CPU time other processes
took during each run is read from /proc/stat: the table's medians use only the builds that ran,
with both their raw runs, while others took under ``--max-foreign`` of the machine.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path

import torch

from encoder import Encoder, encoder_fingerprint, load_encoder, pick_device
from encoder.catalog import CatalogItem, read_catalog
from index.store import ProductStore
from ops.build import embed_catalog


def batch_shapes(items: list[CatalogItem], batch_size: int) -> list[int]:
    """Images per forward pass of a build: the loader batches products, each with its images."""
    return [
        sum(len(i.image_paths) for i in items[k : k + batch_size]) for k in range(0, len(items), batch_size)
    ]


Sample = tuple[float, float]  # (images/s, share of the machine's CPU other processes took meanwhile)


def cpu_clock() -> tuple[float, float, float]:
    """(wall s, CPU s of the whole machine, CPU s of this process and its reaped children)."""
    own = sum(
        r.ru_utime + r.ru_stime
        for r in map(resource.getrusage, (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    )
    try:
        with open("/proc/stat") as f:  # cpu user nice system idle iowait irq softirq steal
            ticks = [int(v) for v in f.readline().split()[1:9]]
        machine = (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")
    except OSError:  # not Linux: other processes cannot be seen
        machine = own
    return time.perf_counter(), machine, own


def foreign_share(start: tuple[float, float, float]) -> float:
    end = cpu_clock()
    others = (end[1] - start[1]) - (end[2] - start[2])
    return max(0.0, others) / ((end[0] - start[0]) * (os.cpu_count() or 1))


def raw_run(encoder: Encoder, inputs: list[torch.Tensor]) -> Sample:
    clock = cpu_clock()
    for x in inputs:
        encoder.embed(x).cpu()  # .cpu() as the build does: waits for an accelerator
    return sum(len(x) for x in inputs) / (time.perf_counter() - clock[0]), foreign_share(clock)


def build_run(encoder: Encoder, items: list[CatalogItem], batch_size: int, workers: int) -> Sample:
    with tempfile.TemporaryDirectory(prefix="lookalike-bench-") as tmp:
        store = ProductStore(Path(tmp) / "store", encoder_fingerprint(encoder), encoder.config.embed_dim)
        try:
            clock = cpu_clock()  # loader workers are joined (and counted) when the loop ends
            report = embed_catalog(encoder, store, items, batch_size, workers, progress=False)
            share = foreign_share(clock)
        finally:
            store.close()
    if report.failures:
        raise SystemExit(f"the catalog has unreadable images: {report.failures[:3]}")
    return report.images_per_s, share


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--catalog", default="demo/catalog.csv", help="folder or CSV")
    parser.add_argument("--encoder", default="demo/encoder.pt")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2], help="loader workers to compare")
    parser.add_argument("--repeats", type=int, default=3, help="builds per workers setting")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch intra-op threads")
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--max-foreign", type=float, default=0.1, help="share of the CPUs other processes may take in a run"
    )
    args = parser.parse_args()

    torch.set_num_threads(args.threads)  # the same for raw and build (loader workers use 1 each)
    device = pick_device(args.device)
    encoder = load_encoder(args.encoder, map_location=device)
    cfg = encoder.config
    items = read_catalog(args.catalog)
    shapes = batch_shapes(items, args.batch_size)
    inputs = [torch.randn(n, 3, cfg.image_size, cfg.image_size) for n in shapes]
    for n in sorted(set(shapes)):  # warm-up: one pass per batch shape (kernel selection, caches)
        encoder.embed(inputs[shapes.index(n)]).cpu()
    print(
        f"{cfg.arch} at {cfg.image_size} px on {device}, batch {args.batch_size}, {len(items)} products / "
        f"{sum(shapes)} images from {args.catalog}, {os.cpu_count()} CPUs, {torch.get_num_threads()} torch "
        f"threads, {args.repeats} builds per setting",
        flush=True,
    )

    raws = [raw_run(encoder, inputs)]
    runs: dict[int, list[tuple[float, float, bool]]] = {w: [] for w in args.workers}  # (raw, build, quiet)
    for _ in range(args.repeats):
        for workers in args.workers:  # settings interleaved too, so a busy spell hits them all
            got, f2 = build_run(encoder, items, args.batch_size, workers)
            raws.append(raw_run(encoder, inputs))
            (before, f1), (after, f3) = raws[-2:]
            quiet = max(f1, f2, f3) <= args.max_foreign
            print(
                f"  workers {workers}: raw {before:.1f}, build {got:.1f}, raw {after:.1f} img/s; "
                f"others took {f1:.0%}, {f2:.0%}, {f3:.0%} of the CPUs{'' if quiet else ' (left out)'}",
                flush=True,
            )
            runs[workers].append(((before + after) / 2, got, quiet))

    def cell(values: list[float], digits: int = 1) -> str:
        if not values:
            return "-"
        return f"{statistics.median(values):.{digits}f} ({', '.join(f'{v:.{digits}f}' for v in values)})"

    print("median (runs) of the quiet builds; raw = mean of the two raw runs around each build")
    print("| loader workers | quiet builds | raw img/s | build img/s | build / raw |\n|---|---|---|---|---|")
    for workers, triples in runs.items():
        kept = [(r, b) for r, b, quiet in triples if quiet]
        raw, built, ratio = [r for r, _ in kept], [b for _, b in kept], [b / r for r, b in kept]
        print(f"| {workers} | {len(kept)}/{len(triples)} | {cell(raw)} | {cell(built)} | {cell(ratio, 2)} |")


if __name__ == "__main__":
    main()
