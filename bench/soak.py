"""Soak: minutes of mixed traffic against a real server; its memory, the errors, every write checked.

    .venv/bin/python bench/soak.py --minutes 30                  # starts the demo server itself
    .venv/bin/python bench/soak.py --minutes 5 --url http://127.0.0.1:8000 --api-key KEY --pid PID

Without ``--url`` it serves a copy of the demo store (``--store``, default the one `make
demo-store` builds; built into a temporary directory when missing) with ``--encoder`` as
`lookalike serve` in a process of its own (tests/server.py), with an API key of its own and
``--server-env`` settings; the demo store itself is never written.

Traffic: ``--clients`` search clients, each posting a real phone photo (smvs-dvd's Canon, Droid,
E63 and Palm shots) to ``POST /search`` as soon as its last answer came (closed loop), and one
writer that adds products (1 or 2 clothing-small validation photos each, ``POST /index``) and,
once ``--keep`` of its products are live, deletes one at random for each add
(``DELETE /products/{id}``). Every acknowledged write goes into a ledger (tests/acknowledged.py).

Reported: the server's resident memory (VmRSS from /proc, sampled every ``--sample-s``) at the
start, after ``--warmup-minutes``, at the end and its maximum, a line a minute; requests and
errors by kind, latencies; searches that returned a product deleted before they were sent; and
after the traffic stops, every acknowledged write checked (added products there with their
photos byte for byte and found by their own photo, deleted ones 404). Exit status 1 when any
error, stale result or lost write was seen.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import hashlib
import json
import os
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.acknowledged import Ledger, check  # noqa: E402
from tests.server import running_server  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
KEY = "soak-key"


def rss_mib(pid: int, field_name: str = "VmRSS") -> float:
    """Resident memory of a process (VmRSS) or its peak (VmHWM), MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field_name} for process {pid}")


@dataclass
class Stats:
    ok: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    first_errors: list[str] = field(default_factory=list)
    latency_ms: dict[str, list[float]] = field(default_factory=dict)
    stale: int = 0  # searches that returned a product deleted before they were sent
    samples: list[tuple[float, float]] = field(default_factory=list)  # (seconds, RSS MiB)

    def done(self, kind: str, started: float) -> None:
        self.ok[kind] += 1
        self.latency_ms.setdefault(kind, []).append((time.perf_counter() - started) * 1000)

    def error(self, kind: str, what: str) -> None:
        self.errors[kind] += 1
        if len(self.first_errors) < 20:
            self.first_errors.append(f"{kind}: {what}")


async def searcher(
    http: httpx.AsyncClient, photos: list[bytes], seed: int, ledger: Ledger, stats: Stats, stop: asyncio.Event
) -> None:
    rng = random.Random(seed)
    while not stop.is_set():
        gone = set(ledger.deleted)
        started = time.perf_counter()
        try:
            r = await http.post("/search", files={"image": ("phone.jpg", rng.choice(photos))})
        except httpx.TransportError as exc:
            stats.error("search", repr(exc))
            continue
        if r.status_code != 200:
            stats.error("search", f"{r.status_code} {r.text[:200]}")
            continue
        stats.done("search", started)
        stale = gone.intersection(h["product_id"] for h in r.json()["results"])
        if stale:
            stats.stale += 1
            stats.error("search", f"returned deleted products {sorted(stale)}")


async def writer(
    http: httpx.AsyncClient,
    photos: list[bytes],
    keep: int,
    ledger: Ledger,
    stats: Stats,
    stop: asyncio.Event,
    run_id: str,
) -> None:
    rng = random.Random(run_id)
    n = 0
    while not stop.is_set():
        live = ledger.live()
        started = time.perf_counter()
        if len(live) >= keep:
            victim = rng.choice(live).product_id
            try:
                r = await http.delete(f"/products/{victim}")
            except httpx.TransportError as exc:
                ledger.no_answer(victim)
                stats.error("delete", repr(exc))
                continue
            if r.status_code == 204:
                ledger.delete_answered(victim)
                stats.done("delete", started)
            else:
                stats.error("delete", f"{r.status_code} {r.text[:200]}")
            continue
        n += 1
        sku = f"SOAK-{run_id}-{n}"
        chosen = tuple(rng.sample(photos, rng.choice((1, 2))))
        files = [("image", (f"{i}.jpg", p)) for i, p in enumerate(chosen)]
        form = {"sku": sku, "title": f"Soak product {n}", "category": "soak", "price": "9.99"}
        try:
            r = await http.post("/index", files=files, data=form)
        except httpx.TransportError as exc:
            ledger.no_answer()
            stats.error("add", repr(exc))
            continue
        if r.status_code == 201:
            ledger.add_answered(r, sku, chosen)
            stats.done("add", started)
        else:
            stats.error("add", f"{r.status_code} {r.text[:200]}")


async def sampler(pid: int, stats: Stats, stop: asyncio.Event, every_s: float, t0: float) -> None:
    minute = 0
    while not stop.is_set():
        now = time.perf_counter() - t0
        stats.samples.append((now, rss_mib(pid)))
        if now >= minute * 60:
            print(
                f"  {now / 60:5.1f} min  RSS {stats.samples[-1][1]:7.0f} MiB  requests "
                f"{sum(stats.ok.values())}  errors {sum(stats.errors.values())}",
                flush=True,
            )
            minute += 1
        with suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), every_s)


async def traffic(args: argparse.Namespace, base: str, key: str, pid: int | None, stats: Stats) -> Ledger:
    queries = phone_photos(Path(args.data))
    products = [
        p.read_bytes() for p in sorted((Path(args.data).parent / "clothing-small/validation").rglob("*.jpg"))
    ]
    ledger = Ledger()
    stop = asyncio.Event()
    limits = httpx.Limits(max_connections=args.clients + 4)
    timeout = httpx.Timeout(120)
    t0 = time.perf_counter()
    async with (
        httpx.AsyncClient(base_url=base, timeout=timeout, limits=limits) as http,
        httpx.AsyncClient(base_url=base, timeout=timeout, headers={"X-API-Key": key}) as admin,
    ):
        tasks = [
            asyncio.create_task(searcher(http, queries, seed, ledger, stats, stop))
            for seed in range(args.clients)
        ]
        run_id = hashlib.sha256(str(time.time()).encode()).hexdigest()[:6]
        tasks.append(asyncio.create_task(writer(admin, products, args.keep, ledger, stats, stop, run_id)))
        if pid is not None:
            tasks.append(asyncio.create_task(sampler(pid, stats, stop, args.sample_s, t0)))
        await asyncio.sleep(args.minutes * 60)
        stop.set()
        await asyncio.gather(*tasks)
    if pid is not None:
        stats.samples.append((time.perf_counter() - t0, rss_mib(pid)))
    return ledger


def phone_photos(smvs: Path) -> list[bytes]:
    """The 400 phone photos of smvs-dvd (read from ../shared/data, never copied)."""
    with open(smvs / "queries.csv", newline="") as f:
        return [(smvs / row["image_path"]).read_bytes() for row in csv.DictReader(f)]


@contextmanager
def server(args: argparse.Namespace) -> Iterator[tuple[str, str, int | None]]:
    """(base URL, API key, server pid): the one at --url, or a demo server started here."""
    if args.url:
        yield args.url.rstrip("/"), args.api_key, args.pid
        return
    env = dict(item.split("=", 1) for item in args.server_env)
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "store"
        if Path(args.store).is_dir():
            shutil.copytree(args.store, store)
        else:
            from ops.build import get_args_parser, main  # a fresh demo store, built once here

            print(f"{args.store} does not exist: building the demo store in {store}", flush=True)
            argv = ["--catalog", "demo/catalog.csv", "--encoder", args.encoder, "--store", str(store)]
            main(get_args_parser().parse_args([*argv, "--no-progress"])).close()
        with running_server(Path(args.encoder), store, LOOKALIKE_API_KEYS=KEY, **env) as (base, proc):
            yield base, KEY, proc.pid


def minute_maxima(samples: list[tuple[float, float]]) -> list[int]:
    """The highest RSS sample of each minute of traffic."""
    top: dict[int, float] = {}
    for t, mib in samples:
        top[int(t // 60)] = max(top.get(int(t // 60), 0.0), mib)
    return [round(top[m]) for m in sorted(top)]


def rss_summary(samples: list[tuple[float, float]], warmup_minutes: float) -> dict:
    """RSS at the start, the first sample after the warm-up, the end and the maximum; and, less at
    the mercy of when a sample falls between two malloc_trim calls, the highest sample of the
    minute after the warm-up against that of the last minute."""
    times = np.array([t for t, _ in samples])
    rss = np.array([m for _, m in samples])
    first = min(int(np.searchsorted(times, warmup_minutes * 60)), len(rss) - 1)
    warm, end = warmup_minutes * 60, times[-1]
    after = float(rss[(times >= warm) & (times < warm + 60)].max(initial=rss[first]))
    last = float(rss[times > end - 60].max())
    return {
        "start": round(rss[0]),
        "after_warmup": round(float(rss[first])),
        "end": round(rss[-1]),
        "max": round(rss.max()),
        "growth_after_warmup_pct": round(float(100 * (rss[-1] / rss[first] - 1)), 1),
        "minute_max_after_warmup": round(after),
        "minute_max_last": round(last),
        "minute_max_growth_pct": round(100 * (last / after - 1), 1),
    }


def report(
    args: argparse.Namespace, stats: Stats, ledger: Ledger, problems: list[str], pid: int | None
) -> dict:
    out: dict = {
        "minutes": args.minutes,
        "clients": args.clients,
        "requests": dict(stats.ok),
        "errors": dict(stats.errors),
        "stale_results": stats.stale,
        "writes": {
            "adds": len(ledger.added),
            "deletes": len(ledger.deleted),
            "live_checked": len(ledger.live()),
            "unanswered": ledger.unanswered,
            "lost": len(problems),
        },
        "latency_ms": {
            k: {p: round(float(np.percentile(v, int(p[1:]))), 1) for p in ("p50", "p99")}
            for k, v in stats.latency_ms.items()
        },
        "load_average": os.getloadavg(),
    }
    if stats.samples:
        out["rss_mib"] = rss_summary(stats.samples, args.warmup_minutes)
        if pid is not None:
            out["rss_mib"]["peak_vmhwm"] = round(rss_mib(pid, "VmHWM"))
        out["rss_max_per_minute"] = minute_maxima(stats.samples)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument(
        "--warmup-minutes", type=float, default=2, help="RSS is compared from here to the end"
    )
    parser.add_argument("--clients", type=int, default=16, help="search clients")
    parser.add_argument("--keep", type=int, default=20, help="the writer's live products before it deletes")
    parser.add_argument("--sample-s", type=float, default=5, help="how often RSS is read")
    parser.add_argument("--url", default=None, help="a running server; default: start the demo server")
    parser.add_argument("--api-key", default=KEY, help="with --url: a key of that server")
    parser.add_argument("--pid", type=int, default=None, help="with --url: the server's process, for RSS")
    parser.add_argument("--encoder", default="demo/encoder.pt")
    parser.add_argument("--store", default=None, help="default: .demo-store/<encoder's sha256[:12]>")
    parser.add_argument(
        "--server-env", action="append", default=[], metavar="NAME=VALUE", help="environment of the server"
    )
    parser.add_argument("--data", default=str(DATA / "smvs-dvd"), help="smvs-dvd: the phone photos")
    parser.add_argument("--json", default=None, help="also write the report here")
    args = parser.parse_args()
    if args.store is None:
        digest = hashlib.sha256(Path(args.encoder).read_bytes()).hexdigest()[:12]
        args.store = str(ROOT / ".demo-store" / digest)
    stats = Stats()
    with server(args) as (base, key, pid):
        print(
            f"soak: {args.minutes:g} min, {args.clients} search clients + 1 writer against {base}"
            f" (pid {pid}); {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}",
            flush=True,
        )
        ledger = asyncio.run(traffic(args, base, key, pid, stats))
        with httpx.Client(base_url=base, timeout=120) as http:
            problems = check(http, ledger)
        out = report(args, stats, ledger, problems, pid)
    print(json.dumps(out, indent=2))
    for line in stats.first_errors + problems[:20]:
        print("  ", line)
    if args.json:
        Path(args.json).write_text(json.dumps({**out, "samples": stats.samples}, indent=1))
    sys.exit(1 if stats.errors or problems else 0)


if __name__ == "__main__":
    main()
