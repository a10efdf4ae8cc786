"""Serving under load: a real uvicorn server vs the in-process ceiling vs the server unbatched.

    .venv/bin/python bench/serve_load.py --encoder demo/encoder.pt              # the demo's arch
    .venv/bin/python bench/serve_load.py --arch mobilenet_v3_small --image-size 128

Builds a store of the catalog (default: the demo's 300 photos) with the encoder (``--arch``: a
randomly initialised one of that architecture; its speed is what counts here), without local
features (geometric re-ranking off, on both sides of the comparison), then measures:

1. the ceiling: one process decoding, embedding and searching the query photos in batches of
   ``--batch-size``, no HTTP;
2. a real ``lookalike serve`` with micro-batching, at each ``--concurrency`` (closed loop: every
   client sends its next photo when the last answer came), with QPS, p50/p95/p99 and the mean
   encoder batch size (from ``/metrics``);
3. the same server with ``max_batch_size=1`` (no batching) at the highest concurrency;
4. the batched server at half its peak rate (open loop, Poisson arrivals): p99 / p50;
5. where the CPU goes: the server's CPU time per search (all its threads: HTTP, decoding, the
   encoder, FAISS; and of it the event loop's thread: HTTP, parsing, the app, JSON) and the load
   generator's, both from the kernel's accounting of each process,
   against the CPU time per search of the in-process ceiling (1 torch thread, so that time is
   the work itself, not threads waiting for each other).

Queries are real JPEGs (clothing-small test photos), sent as a multipart form (``--body form``,
what the storefront sends) or as the raw request body (``--body raw``). Prints Markdown tables and
the goal ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from gpu_serve import descendants, wait_for_workers  # noqa: E402  (bench/, the script's folder)

from encoder import Encoder, EncoderConfig, Preprocessor, load_encoder, save_encoder  # noqa: E402
from index import ProductStore  # noqa: E402
from ops.build import get_args_parser as build_args  # noqa: E402
from ops.build import main as build  # noqa: E402
from tests.server import running_server  # noqa: E402


def make_store(args: argparse.Namespace, work: Path) -> tuple[Path, Path]:
    encoder_path = Path(args.encoder) if args.encoder else work / "encoder.pt"
    if not args.encoder:
        torch.manual_seed(0)
        save_encoder(Encoder(EncoderConfig(arch=args.arch, image_size=args.image_size)), encoder_path)
    store = work / "store"
    argv = ["--catalog", args.catalog, "--encoder", str(encoder_path), "--store", str(store), "--no-progress"]
    argv += ["--rerank", "off"]  # the ceiling does not re-rank either: compare the same work
    build(build_args().parse_args(argv)).close()
    return encoder_path, store


def ceiling(
    encoder_path: Path, store_dir: Path, photos: list[bytes], total: int, batch: int, threads: int
) -> tuple[float, float]:
    """(queries/s, CPU ms per query) of decode + embed + search in batches in this process, with
    ``threads`` torch threads (on a shared machine one thread can beat two that wait for each other)."""
    default_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _ceiling(encoder_path, store_dir, photos, total, batch)
    finally:
        torch.set_num_threads(default_threads)


def _ceiling(
    encoder_path: Path, store_dir: Path, photos: list[bytes], total: int, batch: int
) -> tuple[float, float]:
    encoder = load_encoder(encoder_path)
    preprocess = Preprocessor(encoder.config)
    with ProductStore(store_dir) as store:
        queries = [photos[i % len(photos)] for i in range(total)]
        store.search(encoder.embed(torch.stack([preprocess(photos[0])])).numpy(), 10)  # warm-up
        started, cpu = time.perf_counter(), time.process_time()
        for start in range(0, total, batch):
            pixels = torch.stack([preprocess(q) for q in queries[start : start + batch]])
            store.search(encoder.embed(pixels).numpy(), 10)
        cpu_ms = (time.process_time() - cpu) * 1000 / total
        return total / (time.perf_counter() - started), cpu_ms


def cpu_seconds(pid: int, thread: int | None = None) -> float:
    """User + system CPU time of a process so far (all its threads), or of one of its threads (the
    main thread's id is the process id: the server's event loop), from /proc."""
    stat = Path(f"/proc/{pid}/task/{thread}/stat" if thread else f"/proc/{pid}/stat")
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mib(pid: int) -> float:
    """The highest resident memory of a process so far (VmHWM), MiB."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^VmHWM:\s+(\d+) kB", status, re.M).group(1)) / 1024  # type: ignore[union-attr]


def tree_cpu_seconds(pid: int, event_loops: bool = False) -> float:
    """CPU seconds of the server's processes together, or (``event_loops``) of their main threads."""
    return sum(cpu_seconds(p, p if event_loops else None) for p in [pid, *descendants(pid)])


def batch_stats(base: str, workers: int = 1) -> tuple[float, float]:
    """(sum, count) of the encoder's batch sizes so far, over all workers: each scrape of /metrics
    is answered by one worker, so scrape on new connections until every worker has answered."""
    seen: dict[str, tuple[float, float]] = {}
    for _ in range(50 * workers):
        text = httpx.get(f"{base}/metrics").text
        total = re.search(r"^lookalike_batch_size_sum(\{[^}]*\})? ([\d.e+]+)$", text, re.M)
        count = re.search(r"^lookalike_batch_size_count(\{[^}]*\})? ([\d.e+]+)$", text, re.M)
        seen[(total.group(1) or "") if total else ""] = (
            float(total.group(2)) if total else 0.0,
            float(count.group(2)) if count else 0.0,
        )
        if len(seen) >= workers:
            break
    return sum(t for t, _ in seen.values()), sum(c for _, c in seen.values())


async def post_search(http: httpx.AsyncClient, base: str, photo: bytes, body: str) -> None:
    """One search (k = 10): the photo as a multipart form or as the raw request body."""
    if body == "raw":
        r = await http.post(f"{base}/search", content=photo, headers={"Content-Type": "image/jpeg"})
    else:
        r = await http.post(f"{base}/search", files={"image": ("q.jpg", photo)})
    r.raise_for_status()


async def closed_loop(
    base: str, photos: list[bytes], concurrency: int, total: int, body: str = "form"
) -> tuple[float, np.ndarray]:
    latencies: list[float] = []
    counter = iter(range(total))

    async def client(http: httpx.AsyncClient) -> None:
        for i in counter:
            started = time.perf_counter()
            await post_search(http, base, photos[i % len(photos)], body)
            latencies.append(time.perf_counter() - started)

    limits = httpx.Limits(max_connections=concurrency + 4)
    async with httpx.AsyncClient(timeout=300, limits=limits) as http:
        for photo in photos[:4]:  # warm-up
            await post_search(http, base, photo, body)
        started = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(concurrency)))
        return total / (time.perf_counter() - started), np.array(latencies) * 1000


async def open_loop(
    base: str, photos: list[bytes], rate: float, total: int, body: str = "form", seed: int = 0
) -> np.ndarray:
    """Requests at Poisson arrival times of ``rate`` per second, whatever the answers do."""
    rng = np.random.default_rng(seed)
    arrivals = np.cumsum(rng.exponential(1 / rate, total))
    latencies: list[float] = []
    async with httpx.AsyncClient(timeout=300, limits=httpx.Limits(max_connections=256)) as http:
        t0 = time.perf_counter()

        async def one(i: int) -> None:
            await asyncio.sleep(max(0.0, arrivals[i] - (time.perf_counter() - t0)))
            started = time.perf_counter()
            await post_search(http, base, photos[i % len(photos)], body)
            latencies.append(time.perf_counter() - started)

        await asyncio.gather(*(one(i) for i in range(total)))
    return np.array(latencies) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--encoder", default=None, help="an encoder.pt; default: a random --arch one")
    parser.add_argument("--arch", default="mobilenet_v3_small")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--catalog", default="demo/catalog.csv")
    parser.add_argument("--queries", default="../shared/data/clothing-small/test")
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--requests", type=int, default=200, help="per measurement")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--wait-ms", type=float, default=5.0)
    parser.add_argument(
        "--workers", type=int, default=1, help="server processes (serve --workers); CPU summed over all"
    )
    parser.add_argument(
        "--body", choices=("form", "raw"), default="form", help="multipart form, or the photo as the body"
    )
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    photos = [p.read_bytes() for p in sorted(Path(args.queries).rglob("*.jpg"))[:128]]
    with tempfile.TemporaryDirectory() as tmp:
        encoder_path, store = make_store(args, Path(tmp))
        arch = load_encoder(encoder_path).config
        print(f"\n{arch.arch} at {arch.image_size} px; {len(photos)} query JPEGs; {os.cpu_count()} CPUs")
        by_threads = {
            n: ceiling(encoder_path, store, photos, args.requests, args.batch_size, n)
            for n in sorted({1, torch.get_num_threads()})
        }
        top = max(q for q, _ in by_threads.values())
        work_ms = by_threads[1][1]  # one thread: the CPU the work needs, no thread waiting for another
        tried = ", ".join(
            f"{q:.1f} q/s, {ms:.1f} CPU ms/q with {n} torch threads" for n, (q, ms) in by_threads.items()
        )
        print(
            f"ceiling (in-process decode + embed + search, batches of {args.batch_size}): "
            f"{top:.1f} q/s ({tried})\n"
        )
        print(
            "| server | concurrency | QPS | x ceiling | p50 ms | p95 ms | p99 ms | mean batch "
            "| server CPU ms/search | of it, event loop | load generator CPU ms/search |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        rows: dict[tuple[str, int], float] = {}
        cpu_rows: dict[tuple[str, int], float] = {}
        peaks: dict[str, float] = {}
        settings = {
            "LOOKALIKE_MAX_BATCH_SIZE": str(args.batch_size),
            "LOOKALIKE_MAX_WAIT_MS": str(args.wait_ms),
        }
        unbatched = {"LOOKALIKE_MAX_BATCH_SIZE": "1", "LOOKALIKE_MAX_WAIT_MS": "0"}
        for name, env, concurrencies in (
            ("batched", settings, levels),
            ("unbatched", unbatched, levels[-1:]),
        ):
            env = {**env, "LOOKALIKE_WORKERS": str(args.workers)}
            with running_server(encoder_path, store, **env) as (base, server):
                wait_for_workers(base, args.workers)
                for c in concurrencies:
                    before = batch_stats(base, args.workers)
                    server_cpu, client_cpu = tree_cpu_seconds(server.pid), time.process_time()
                    loop_cpu = tree_cpu_seconds(server.pid, event_loops=True)
                    qps, ms = asyncio.run(closed_loop(base, photos, c, args.requests, args.body))
                    server_cpu = (tree_cpu_seconds(server.pid) - server_cpu) * 1000 / (args.requests + 4)
                    client_cpu = (time.process_time() - client_cpu) * 1000 / (args.requests + 4)
                    loop_cpu = tree_cpu_seconds(server.pid, event_loops=True) - loop_cpu
                    loop_cpu *= 1000 / (args.requests + 4)
                    after = batch_stats(base, args.workers)
                    # with several workers each scrape is one worker's: a sample, not the whole
                    mean_batch = (after[0] - before[0]) / max(after[1] - before[1], 1)
                    rows[name, c] = qps
                    cpu_rows[name, c] = server_cpu
                    p50, p95, p99 = np.percentile(ms, [50, 95, 99])
                    print(
                        f"| {name} | {c} | {qps:.1f} | {qps / top:.2f} | {p50:.0f} | {p95:.0f} | {p99:.0f} | "
                        f"{mean_batch:.1f} | {server_cpu:.1f} | {loop_cpu:.1f} | {client_cpu:.1f} |",
                        flush=True,
                    )
                peaks[name] = sum(peak_rss_mib(p) for p in [server.pid, *descendants(server.pid)])
                if name == "batched":
                    peak = max(rows["batched", c] for c in levels)
                    half = asyncio.run(open_loop(base, photos, peak / 2, args.requests, args.body))
                    h50, h99 = np.percentile(half, [50, 99])
        c = levels[-1]
        print(
            f"\nat concurrency {c}: batched {rows['batched', c] / top:.2f} x the ceiling (goal >= 0.85), "
            f"{rows['batched', c] / rows['unbatched', c]:.2f} x unbatched (goal >= 2 for mobilenet)"
        )
        print(
            f"server CPU per search, batched at concurrency {c}: {cpu_rows['batched', c]:.1f} ms = "
            f"{cpu_rows['batched', c] / work_ms:.2f} x the in-process work ({work_ms:.1f} ms; goal <= 1.3)"
        )
        print("server peak RSS: " + ", ".join(f"{name} {mib:.0f} MiB" for name, mib in peaks.items()))
        print(
            f"at half the peak rate ({peak / 2:.1f}/s, open loop): p50 {h50:.0f} ms, p99 {h99:.0f} ms, "
            f"p99/p50 {h99 / h50:.2f} (goal <= 3)"
        )


if __name__ == "__main__":
    main()
