"""Serving throughput and latency under concurrent searches: micro-batched vs one-by-one.

    .venv/bin/python bench/serving_load.py --encoder demo/encoder.pt --store .demo-store/<id> \
        --queries ../shared/data/clothing-small/test --concurrency 16 --requests 160

Starts a real uvicorn server per configuration (max_batch_size 1, then the batched setting) on
a free loopback port, sends the same bounded set of requests from `--concurrency` clients and
prints requests/s and latency percentiles; the ratio of the two rows is the figure to compare.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(args: argparse.Namespace, batch_size: int, wait_ms: float) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "LOOKALIKE_MAX_BATCH_SIZE": str(batch_size), "LOOKALIKE_MAX_WAIT_MS": str(wait_ms)}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lookalike",
            "serve",
            "--encoder",
            args.encoder,
            "--store",
            args.store,
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return server, base
        except httpx.TransportError:
            time.sleep(0.3)
    server.kill()
    raise RuntimeError("server did not start")


async def load(base: str, photos: list[bytes], concurrency: int, total: int) -> tuple[float, np.ndarray]:
    latencies: list[float] = []
    counter = iter(range(total))

    async def client(http: httpx.AsyncClient) -> None:
        for i in counter:
            started = time.perf_counter()
            r = await http.post(
                f"{base}/search", files={"image": ("q.jpg", photos[i % len(photos)])}, data={"k": "10"}
            )
            r.raise_for_status()
            latencies.append(time.perf_counter() - started)

    async with httpx.AsyncClient(timeout=120) as http:
        await client_warmup(http, base, photos[0])
        started = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(concurrency)))
        return time.perf_counter() - started, np.array(latencies) * 1000


async def client_warmup(http: httpx.AsyncClient, base: str, photo: bytes) -> None:
    for _ in range(3):
        (await http.post(f"{base}/search", files={"image": ("q.jpg", photo)})).raise_for_status()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--encoder", default="demo/encoder.pt")
    parser.add_argument("--store", required=True)
    parser.add_argument("--queries", default="../shared/data/clothing-small/test")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--requests", type=int, default=160)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--wait-ms", type=float, default=5.0)
    args = parser.parse_args()

    photos = [p.read_bytes() for p in sorted(Path(args.queries).rglob("*.jpg"))[:64]]
    print(f"{args.requests} searches from {args.concurrency} concurrent clients, {os.cpu_count()} CPUs")
    print(
        "| max_batch_size | max_wait_ms | requests/s | p50 ms | p95 ms | p99 ms |\n|---|---|---|---|---|---|"
    )
    rates = []
    for batch_size, wait_ms in ((1, 0.0), (args.batch_size, args.wait_ms)):
        server, base = start_server(args, batch_size, wait_ms)
        try:
            seconds, ms = asyncio.run(load(base, photos, args.concurrency, args.requests))
        finally:
            server.terminate()
            server.wait(timeout=30)
        rates.append(args.requests / seconds)
        p50, p95, p99 = np.percentile(ms, [50, 95, 99])
        print(
            f"| {batch_size} | {wait_ms:g} | {rates[-1]:.1f} | {p50:.0f} | {p95:.0f} | {p99:.0f} |",
            flush=True,
        )
    print(f"batched / unbatched throughput: {rates[1] / rates[0]:.2f}x")


if __name__ == "__main__":
    main()
