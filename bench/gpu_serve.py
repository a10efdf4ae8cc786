"""Serving on a GPU: searches/s, p50 and p99 over HTTP for 1, 4 and 8 workers, and GPU utilisation.

    bash bench/gpu_serve.sh                       # on a GPU machine (installs .whl/, then runs this)
    python3 bench/gpu_serve.py --dry-run          # the CPU check: tiny model, tiny load, 1 and 2 workers

For each ``--models`` entry (``arch@size``; random weights: the speed is what counts) it builds a
store of the demo catalog, then serves it with ``lookalike serve --workers N`` on ``--device`` for
each ``--workers`` count, and drives it from ``--clients`` processes, each keeping ``--connections``
searches in flight (closed loop) with real photos (``--queries``: a folder of JPEGs, read at run
time). After a warm-up, every answer of the measured window counts; ``nvidia-smi`` samples the GPU
meanwhile. Prints one Markdown row per run as soon as it is measured (and a JSON line to
``$OUT/gpu_serve.jsonl`` when OUT is set).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import multiprocessing
import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.server import running_server  # noqa: E402

WORKER_HEADER = "X-Lookalike-Worker"


@dataclass
class Row:
    model: str
    workers: int
    clients: int
    connections: int
    qps: float
    p50_ms: float
    p99_ms: float
    answers: int
    errors: int
    gpu_util_pct: float | None
    gpu_mem_mib: float | None
    rss_per_worker_mib: float
    rss_total_mib: float  # the supervising process and its workers

    def markdown(self) -> str:
        util = "n/a" if self.gpu_util_pct is None else f"{self.gpu_util_pct:.0f}"
        mem = "n/a" if self.gpu_mem_mib is None else f"{self.gpu_mem_mib:,.0f}"
        return (
            f"| {self.model} | {self.workers} | {self.clients} x {self.connections} | {self.qps:,.0f} | "
            f"{self.p50_ms:.1f} | {self.p99_ms:.1f} | {self.errors} | {util} | {mem} | "
            f"{self.rss_per_worker_mib:,.0f} | {self.rss_total_mib:,.0f} |"
        )


HEADER = (
    "| model | workers | clients x connections | searches/s | p50 ms | p99 ms | errors | GPU util % "
    "| GPU memory MiB | RSS per worker MiB | RSS in all MiB |\n|---|---|---|---|---|---|---|---|---|---|---|"
)


def build_store(
    arch: str, size: int, catalog: Path, limit: int, device: str, work: Path
) -> tuple[Path, Path]:
    """A random ``arch`` encoder at ``size`` px and a store of the first ``limit`` catalog rows."""
    import torch

    from encoder import Encoder, EncoderConfig, save_encoder
    from ops.build import get_args_parser as build_args
    from ops.build import main as build

    torch.manual_seed(0)
    encoder = work / f"{arch}-{size}.pt"
    save_encoder(Encoder(EncoderConfig(arch=arch, image_size=size)), encoder)
    with catalog.open() as f:
        rows = list(csv.DictReader(f))[:limit]
    subset = work / f"catalog-{arch}.csv"
    with subset.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:  # paths relative to the catalog's folder, as lookalike build reads them
            writer.writerow({**row, "image_path": str(catalog.parent / row["image_path"])})
    store = work / f"store-{arch}-{size}"
    argv = ["--catalog", str(subset), "--encoder", str(encoder), "--store", str(store)]
    build(build_args().parse_args([*argv, "--no-progress", "--device", device, "--workers", "0"])).close()
    return encoder, store


def wait_for_workers(base: str, workers: int, rounds: int = 300) -> int:
    """Ask /ready until ``workers`` distinct workers answered (each loads its own model); the
    number seen. One worker alone names none."""
    if workers == 1:
        return 1
    seen: set[str] = set()
    for _ in range(rounds):
        for _ in range(workers):
            r = httpx.get(f"{base}/ready", timeout=30)  # a new connection each: any worker may take it
            if r.status_code == 200 and WORKER_HEADER in r.headers:
                seen.add(r.headers[WORKER_HEADER])
        if len(seen) >= workers:
            break
        time.sleep(0.2)
    return len(seen)


def client(
    base: str, photos: list[bytes], connections: int, start: float, stop: float, count: int, seed: int
) -> tuple[list[float], int, float, float]:
    """One client process: ``connections`` closed loops until ``stop`` (wall clock), or each for
    ``count`` answers after the warm-up when ``count`` is set. (latencies in s of the answers in
    the window, errors, first and last moment of the window)."""
    return asyncio.run(_client(base, photos, connections, start, stop, count, seed))


async def _client(
    base: str, photos: list[bytes], connections: int, start: float, stop: float, count: int, seed: int
) -> tuple[list[float], int, float, float]:
    rng = random.Random(seed)
    latencies: list[float] = []
    errors = 0
    window = [float("inf"), 0.0]

    async def loop(http: httpx.AsyncClient) -> None:
        nonlocal errors
        done = 0
        while (done < count) if count else time.time() < stop:
            began = time.time()
            try:
                r = await http.post(
                    f"{base}/search", files={"image": ("q.jpg", rng.choice(photos), "image/jpeg")}
                )
                ok = r.status_code == 200
            except httpx.HTTPError:
                ok = False
            ended = time.time()
            if began < start:  # the warm-up
                continue
            done += 1
            if not ok:
                errors += 1
                continue
            latencies.append(ended - began)
            window[0], window[1] = min(window[0], began), max(window[1], ended)

    limits = httpx.Limits(max_connections=connections)
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:
        await asyncio.gather(*(loop(http) for _ in range(connections)))
    return latencies, errors, window[0], window[1]


def gpu_sampler() -> subprocess.Popen[str] | None:
    try:
        return subprocess.Popen(
            [
                "nvidia-smi",
                "--query-gpu=utilization.gpu,memory.used",
                "--format=csv,noheader,nounits",
                "-lms",
                "250",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
    except FileNotFoundError:
        return None


def gpu_summary(sampler: subprocess.Popen[str] | None) -> tuple[float | None, float | None]:
    """(mean utilisation %, peak memory MiB) over the samples, summed over the GPUs per sample."""
    if sampler is None:
        return None, None
    sampler.terminate()
    out, _ = sampler.communicate(timeout=10)
    samples = [[float(v) for v in line.split(",")] for line in out.splitlines() if line.count(",") == 1]
    if not samples:
        return None, None
    return float(np.mean([s[0] for s in samples])), float(np.max([s[1] for s in samples]))


def descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            for child in (task / "children").read_text().split():
                found.append(int(child))
                todo.append(int(child))
    return found


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def measure(
    args: argparse.Namespace, model: str, encoder: Path, store: Path, workers: int, photos: list[bytes]
) -> Row:
    env = {
        "LOOKALIKE_WORKERS": str(workers),
        "LOOKALIKE_DEVICE": args.device,
        "LOOKALIKE_MAX_BATCH_SIZE": str(args.max_batch_size),
        "LOOKALIKE_MAX_WAIT_MS": str(args.max_wait_ms),
    }
    with running_server(encoder, store, **env) as (base, server):
        seen = wait_for_workers(base, workers)
        if seen < workers:
            print(f"warning: only {seen} of {workers} workers answered /ready; measuring anyway", flush=True)
        start = time.time() + args.warmup_s
        stop = start + args.seconds
        sampler = gpu_sampler()
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(args.clients) as pool:
            jobs = [
                (base, photos, args.connections, start, stop, args.requests, seed)
                for seed in range(args.clients)
            ]
            results = pool.starmap(client, jobs)
        util, mem = gpu_summary(sampler)
        pids = descendants(server.pid) if workers > 1 else [server.pid]
        rss = max(rss_mib(p) for p in pids)
        rss_total = sum(rss_mib(p) for p in {server.pid, *pids})
    latencies = np.array([x for r in results for x in r[0]]) * 1000
    errors = sum(r[1] for r in results)
    began, ended = min(r[2] for r in results), max(r[3] for r in results)
    qps = len(latencies) / (ended - began) if len(latencies) else 0.0
    p50, p99 = np.percentile(latencies, [50, 99]).tolist() if len(latencies) else [float("nan")] * 2
    return Row(
        model,
        workers,
        args.clients,
        args.connections,
        qps,
        p50,
        p99,
        len(latencies),
        errors,
        util,
        mem,
        rss,
        rss_total,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--models", default="efficientnet_lite0@224,resnet50@224", help="arch@size, comma-separated"
    )
    parser.add_argument("--workers", default="1,4,8")
    parser.add_argument("--clients", type=int, default=12, help="client processes")
    parser.add_argument("--connections", type=int, default=8, help="searches each client keeps in flight")
    parser.add_argument("--seconds", type=float, default=12.0, help="measured window per run")
    parser.add_argument("--warmup-s", type=float, default=4.0)
    parser.add_argument("--requests", type=int, default=0, help="answers per connection instead of --seconds")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--max-batch-size", type=int, default=64)
    parser.add_argument("--max-wait-ms", type=float, default=2.0)
    parser.add_argument("--catalog", default=str(ROOT / "demo" / "catalog.csv"))
    parser.add_argument("--catalog-limit", type=int, default=300, help="products in the served store")
    parser.add_argument("--queries", default=str(ROOT / "demo" / "catalog"), help="a folder of JPEG photos")
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny model and load, 1 and 2 workers")
    args = parser.parse_args()
    if args.dry_run:
        args.models, args.workers, args.device = "mobilenet_v3_small@64", "1,2", "cpu"
        args.clients, args.connections, args.requests, args.warmup_s = 2, 2, 3, 1.0
        args.catalog_limit, args.max_batch_size = 12, 8
    photos = [p.read_bytes() for p in sorted(Path(args.queries).rglob("*.jpg"))][:400]
    if not photos:
        sys.exit(f"no JPEG photos under {args.queries}")
    out = Path(os.environ["OUT"]) / "gpu_serve.jsonl" if os.environ.get("OUT") else None
    print(f"{len(photos)} query photos from {args.queries}; device {args.device}\n\n{HEADER}", flush=True)
    with tempfile.TemporaryDirectory(prefix="gpu-serve-") as tmp:
        for model in args.models.split(","):
            arch, size = model.split("@")
            work = Path(tmp)
            encoder, store = build_store(
                arch, int(size), Path(args.catalog), args.catalog_limit, args.device, work
            )
            for workers in (int(w) for w in args.workers.split(",")):
                row = measure(args, model, encoder, store, workers, photos)
                print(row.markdown(), flush=True)
                if out is not None:
                    with out.open("a") as f:
                        f.write(json.dumps(asdict(row)) + "\n")


if __name__ == "__main__":
    main()
