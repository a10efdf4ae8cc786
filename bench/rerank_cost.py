"""What local matching costs a search on a store, through a real server: CPU per search as the
store decided, against the same server with ``LOOKALIKE_RERANK=off``.

    .venv/bin/python bench/rerank_cost.py                       # the demo store, built as `make run` does
    .venv/bin/python bench/rerank_cost.py --store S --encoder E --queries DIR

Each server (``lookalike serve``) gets ``--searches`` photos (default: 100 clothing-small test
photos) one after another; its CPU time (user + system, all its threads, from /proc) over them,
divided by their number, is the CPU per search. The two servers run one after the other on the
same store; the order is alternated over ``--rounds`` and the ratio printed per round.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.server import running_server  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def cost(encoder: Path, store: Path, photos: list[Path], rerank: str) -> tuple[float, int]:
    """(CPU ms per search, results verified) of a server with ``LOOKALIKE_RERANK=rerank``."""
    with running_server(encoder, store, LOOKALIKE_RERANK=rerank) as (base, server), httpx.Client() as client:
        for photo in photos[:5]:  # warm up
            client.post(f"{base}/search", files={"image": ("q.jpg", photo.read_bytes(), "image/jpeg")})
        before, verified = cpu_seconds(server.pid), 0
        for photo in photos:
            answer = client.post(
                f"{base}/search", files={"image": ("q.jpg", photo.read_bytes(), "image/jpeg")}
            )
            answer.raise_for_status()
            verified += sum(r["inliers"] is not None for r in answer.json()["results"])
        return (cpu_seconds(server.pid) - before) / len(photos) * 1000, verified


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--encoder", type=Path, default=ROOT / "demo" / "encoder.pt")
    parser.add_argument(
        "--store", type=Path, default=None, help="default: the demo store `make demo-store` builds"
    )
    parser.add_argument("--queries", type=Path, default=DATA / "clothing-small" / "test")
    parser.add_argument("--searches", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if args.store is None:
        import hashlib

        digest = hashlib.sha256(args.encoder.read_bytes()).hexdigest()[:12]
        args.store = ROOT / ".demo-store" / digest
    photos = sorted(args.queries.rglob("*.jpg"))[: args.searches]
    print(f"store {args.store}: {len(photos)} searches per server, one after another\n")
    print("| round | as the store decided: CPU ms/search | LOOKALIKE_RERANK=off | ratio | results verified |")
    print("|---|---|---|---|---|")
    for round_ in range(args.rounds):
        order = ["store", "off"] if round_ % 2 == 0 else ["off", "store"]
        found = {mode: cost(args.encoder, args.store, photos, mode) for mode in order}
        (store_ms, verified), (off_ms, _) = found["store"], found["off"]
        print(f"| {round_ + 1} | {store_ms:.1f} | {off_ms:.1f} | {store_ms / off_ms:.2f} | {verified} |")


if __name__ == "__main__":
    main()
