"""Operations: a server's memory, hot-swap latency and store backup time, on a real server.

    .venv/bin/python bench/operations.py                         # the demo encoder and catalog
    .venv/bin/python bench/operations.py --store DIR             # a store already built with --encoder

Builds the catalog with ``--encoder`` (or uses ``--store``), makes a second encoder of the same
config with other random weights and builds the catalog with it too (the pair to reload), then,
against a real ``lookalike serve`` (resident memory is VmRSS from ``/proc/PID/status``):

1. memory after start-up and after ``--searches`` searches with real photos;
2. ``POST /admin/reload`` back and forth between the two pairs: ``--idle-reloads`` with nothing
   else running, then ``--load-reloads`` while ``--clients`` clients search without pause (every
   non-200 answer is a failure). Searches on the old pair at the switch are bounded from the
   clients' timestamps: at least those the old pair answered after the first answer from the new
   pair arrived, at most those it answered after the last search it answered was sent (each
   client has one open, so never more than ``--clients``);
3. memory after one more reload and after ``--memory-reloads`` in a row (a search after each);
4. ``lookalike index backup`` of the store after the server stopped: the command in a new process
   (wall time, process start included) and ``ops.backup.backup_store`` in this one, the median
   of ``--backups`` runs each.

Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from encoder import Encoder, EncoderConfig, load_encoder, save_encoder  # noqa: E402
from ops.backup import backup_store  # noqa: E402
from ops.build import get_args_parser as build_args  # noqa: E402
from ops.build import main as build  # noqa: E402
from tests.server import running_server  # noqa: E402

API_KEY = "operations-bench-key"
KEY = {"X-API-Key": API_KEY}


@dataclass(frozen=True)
class Pair:
    encoder: Path
    store: Path
    fingerprint: str


@dataclass(frozen=True)
class Answer:
    sent: float
    received: float
    status: int  # 0: no HTTP answer at all
    fingerprint: str | None


def rss_mib(pid: int) -> float:
    """Resident memory of a process (VmRSS) in MiB."""
    return _status_kib(pid, "VmRSS") / 1024


def peak_rss_mib(pid: int) -> float:
    """The highest resident memory the process has had (VmHWM) in MiB."""
    return _status_kib(pid, "VmHWM") / 1024


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise ValueError(f"no {field} in /proc/{pid}/status")


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def build_store(catalog: str, encoder: Path, store: Path) -> Path:
    """``lookalike build`` of ``catalog`` into ``store``, its report left out (a random encoder
    finds thousands of near-duplicates)."""
    argv = ["--catalog", catalog, "--encoder", str(encoder), "--store", str(store), "--no-progress"]
    with contextlib.redirect_stdout(io.StringIO()):
        build(build_args().parse_args(argv)).close()
    return store


def second_encoder(first: Path, path: Path, seed: int) -> str:
    """Save ``first``'s config (arch, image size, normalisation) with other random weights at
    ``path``; return its fingerprint."""
    config = load_encoder(first).config
    torch.manual_seed(seed)
    same = EncoderConfig(arch=config.arch, image_size=config.image_size, mean=config.mean, std=config.std)
    return save_encoder(Encoder(same), path)


def directory_mib(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def search(http: httpx.Client, photo: bytes) -> httpx.Response:
    r = http.post("/search", files={"image": ("q.jpg", photo, "image/jpeg")}, data={"k": "10"})
    r.raise_for_status()
    return r


def reload(http: httpx.Client, pair: Pair) -> tuple[float, float]:
    """Switch to ``pair``: (client round trip ms, the server's took_ms)."""
    started = time.perf_counter()
    r = http.post(
        "/admin/reload", json={"encoder_path": str(pair.encoder), "store_dir": str(pair.store)}, headers=KEY
    )
    elapsed = (time.perf_counter() - started) * 1000
    if (
        r.status_code != 200
        or not r.json()["changed"]
        or r.json()["current"]["fingerprint"] != pair.fingerprint
    ):
        raise RuntimeError(f"the reload to {pair.store} did not switch: {r.status_code} {r.text}")
    return elapsed, float(r.json()["took_ms"])


@dataclass(frozen=True)
class LoadedReload:
    round_trip_ms: float
    took_ms: float
    drained: bool
    at_least: int  # searches on the old pair that surely were in flight at the switch
    at_most: int  # ... that may have been


async def reloads_under_load(
    base: str, pairs: list[Pair], photos: list[bytes], clients: int, reloads: int
) -> tuple[list[LoadedReload], list[Answer]]:
    """``reloads`` reloads, alternating through ``pairs`` (``pairs[0]`` is served now), while
    ``clients`` clients search without pause; every search's answer is returned."""
    answers: list[Answer] = []
    done = asyncio.Event()
    results: list[LoadedReload] = []
    limits = httpx.Limits(max_connections=clients + 4)
    async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as http:

        async def client(n: int) -> None:
            i = n
            while not done.is_set():
                sent = time.perf_counter()
                photo = {"image": ("q.jpg", photos[i % len(photos)], "image/jpeg")}
                try:
                    r = await http.post("/search", files=photo, data={"k": "10"})
                    status, fp = (
                        r.status_code,
                        (r.json().get("encoder_fingerprint") if r.status_code == 200 else None),
                    )
                except httpx.HTTPError:
                    status, fp = 0, None
                answers.append(Answer(sent, time.perf_counter(), status, fp))
                i += clients

        async def reloader() -> None:
            try:
                for k in range(reloads):
                    old, new = pairs[k % len(pairs)], pairs[(k + 1) % len(pairs)]
                    floor = len(answers) + 2 * clients  # searches flow on the old pair first
                    while len(answers) < floor:
                        await asyncio.sleep(0.01)
                    sent = time.perf_counter()
                    body = {"encoder_path": str(new.encoder), "store_dir": str(new.store)}
                    r = await http.post("/admin/reload", json=body, headers=KEY)
                    received = time.perf_counter()
                    if r.status_code != 200 or r.json()["current"]["fingerprint"] != new.fingerprint:
                        raise RuntimeError(f"a reload under load failed: {r.status_code} {r.text}")
                    until = len(answers) + 2 * clients  # and on the new one after
                    while len(answers) < until:
                        await asyncio.sleep(0.01)
                    results.append(_bounds(answers, old, new, sent, received, r.json()))
            finally:
                done.set()

        await asyncio.gather(reloader(), *(client(n) for n in range(clients)))
    return results, answers


def _bounds(
    answers: list[Answer], old: Pair, new: Pair, sent: float, received: float, body: dict[str, object]
) -> LoadedReload:
    """The switch lies after the last search sent that the old pair answered and before the first
    answer from the new pair arrived: count the old pair's answers that arrived after each."""
    window = [a for a in answers if a.received > sent and a.sent < received + 5]
    on_old = [a for a in window if a.fingerprint == old.fingerprint]
    on_new = [a for a in window if a.fingerprint == new.fingerprint]
    earliest = max([sent, *(a.sent for a in on_old)])
    latest = min([received, *(a.received for a in on_new)])
    took_ms = body["took_ms"]
    assert isinstance(took_ms, int | float)
    return LoadedReload(
        (received - sent) * 1000,
        float(took_ms),
        bool(body["drained"]),
        sum(a.received > latest for a in on_old),
        sum(a.received > earliest for a in on_old),
    )


def spread(values: list[float]) -> str:
    return f"median {statistics.median(values):.0f} ms (min {min(values):.0f}, max {max(values):.0f})"


def seconds(values: list[float]) -> str:
    return f"median {statistics.median(values):.2f} s (min {min(values):.2f}, max {max(values):.2f})"


def measure_server(
    args: argparse.Namespace, first: Pair, other: Pair, photos: list[bytes]
) -> list[tuple[str, str]]:
    """Memory and reloads against a real server of ``first`` (its fingerprint is read from it)."""
    rows: list[tuple[str, str]] = []
    roots = ",".join(
        str(p.resolve().parent) for p in (first.encoder, first.store, other.encoder, other.store)
    )
    with (
        running_server(
            first.encoder, first.store, LOOKALIKE_API_KEYS=API_KEY, LOOKALIKE_RELOAD_ROOTS=roots
        ) as (
            base,
            server,
        ),
        httpx.Client(base_url=base, timeout=120) as http,
    ):
        served = http.get("/health").json()["encoder"]["fingerprint"]
        pairs = [Pair(first.encoder, first.store, served), other]
        rows.append(("resident memory after start-up", f"{rss_mib(server.pid):.0f} MiB"))
        for i in range(args.searches):
            search(http, photos[i % len(photos)])
        rows.append((f"resident memory after {args.searches} searches", f"{rss_mib(server.pid):.0f} MiB"))

        serving, idle = 0, []
        for _ in range(args.idle_reloads):
            serving = 1 - serving
            idle.append(reload(http, pairs[serving]))
        print("idle reloads done", flush=True)
        rows.append((f"reload, idle ({args.idle_reloads}x): round trip", spread([r for r, _ in idle])))
        rows.append((f"reload, idle ({args.idle_reloads}x): server's took_ms", spread([t for _, t in idle])))

        order = pairs[serving:] + pairs[:serving]
        loaded, answers = asyncio.run(
            reloads_under_load(base, order, photos, args.clients, args.load_reloads)
        )
        serving = (serving + args.load_reloads) % 2
        print("reloads under load done", flush=True)
        failed = [a.status for a in answers if a.status != 200]
        under = f"reload, {args.clients} clients searching ({args.load_reloads}x)"
        in_flight = ", ".join(f"{r.at_least}-{r.at_most}" for r in loaded)
        drained = sum(r.drained for r in loaded)
        rows.append((f"{under}: round trip", spread([r.round_trip_ms for r in loaded])))
        rows.append((f"{under}: server's took_ms", spread([r.took_ms for r in loaded])))
        rows.append(
            (
                f"{under}: searches on the old pair at the switch (bounds, each reload)",
                f"{in_flight} (old pair drained before the answer: {drained} of {len(loaded)})",
            )
        )
        failures = f"{len(failed)} of {len(answers)}" + (f" (statuses {failed})" if failed else "")
        rows.append((f"{under}: failed searches (non-200)", failures))

        readings: list[float] = []
        for _ in range(args.memory_reloads):
            serving = 1 - serving
            reload(http, pairs[serving])
            search(http, photos[0])
            readings.append(rss_mib(server.pid))
        what = f"resident memory after 1 more reload / after {args.memory_reloads} in a row (a search each)"
        low, high = min(readings), max(readings)
        rows.append((what, f"{readings[0]:.0f} / {readings[-1]:.0f} MiB (min {low:.0f}, max {high:.0f})"))
        rows.append(("peak resident memory of the run (VmHWM)", f"{peak_rss_mib(server.pid):.0f} MiB"))
    return rows


def measure_backups(store: Path, work: Path, runs: int) -> list[tuple[str, str]]:
    """``lookalike index backup`` in a new process (wall time) and ``backup_store`` in this one."""
    command, in_process = [], []
    for i in range(runs):
        backup = [sys.executable, "-m", "lookalike", "index", "backup", "--store", str(store)]
        started = time.perf_counter()
        subprocess.run([*backup, "--to", str(work / f"backup-cli-{i}")], check=True, capture_output=True)
        command.append(time.perf_counter() - started)
        in_process.append(backup_store(store, work / f"backup-fn-{i}").seconds)
    return [
        ("store size on disk", f"{directory_mib(store):.1f} MiB"),
        (f"`lookalike index backup`, new process, wall time ({runs}x)", seconds(command)),
        (f"`ops.backup.backup_store`, in process ({runs}x)", seconds(in_process)),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--encoder", default="demo/encoder.pt")
    parser.add_argument("--catalog", default="demo/catalog.csv")
    parser.add_argument("--store", default=None, help="a store built with --encoder (default: build one)")
    parser.add_argument("--queries", default="../shared/data/clothing-small/test", help="JPEGs to search")
    parser.add_argument("--searches", type=int, default=20, help="before the second memory reading")
    parser.add_argument("--idle-reloads", type=int, default=5)
    parser.add_argument("--load-reloads", type=int, default=5)
    parser.add_argument("--clients", type=int, default=8, help="searching during --load-reloads")
    parser.add_argument("--memory-reloads", type=int, default=20)
    parser.add_argument("--backups", type=int, default=3, help="runs of each backup (median)")
    parser.add_argument("--seed", type=int, default=1, help="of the second encoder's random weights")
    args = parser.parse_args()
    for name in ("searches", "idle_reloads", "load_reloads", "clients", "memory_reloads", "backups"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    photos = [p.read_bytes() for p in sorted(Path(args.queries).rglob("*.jpg"))[:64]]
    if not photos:
        parser.error(f"no .jpg photos under {args.queries}")
    print(f"load average at start: {load_average()}; {os.cpu_count()} CPUs", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        work, encoder = Path(tmp), Path(args.encoder)
        started = time.perf_counter()
        store = Path(args.store) if args.store else build_store(args.catalog, encoder, work / "store-a")
        other = work / "encoder-b.pt"
        other_fingerprint = second_encoder(encoder, other, args.seed)
        other_pair = Pair(other, build_store(args.catalog, other, work / "store-b"), other_fingerprint)
        print(f"stores ready in {time.perf_counter() - started:.0f} s", flush=True)
        rows = measure_server(args, Pair(encoder, store, ""), other_pair, photos)
        print("server stopped; backups", flush=True)
        rows += measure_backups(store, work, args.backups)
    print(f"load average at end: {load_average()}\n")
    print("| measurement | result |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
