"""`lookalike serve --workers 2`: two real uvicorn workers on one port over one SQLite store.

Each worker holds its own FAISS copy; a write through one is found (or gone) in searches answered
by either, once the other has followed the change log, and the store is intact afterwards.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter, generate_latest

from app.config import Settings
from app.workers import WORKER_HEADER, WorkerLabelled, threads_per_worker, worker_environment
from index import ProductStore
from ops.check import check_store
from tests.app.conftest import API_KEY
from tests.conftest import image_bytes
from tests.server import running_server

KEY = {"X-API-Key": API_KEY}
SYNC_INTERVAL_S = 0.2
ROUNDS = 150  # rounds of 4 concurrent searches: ample for both workers to answer, on a busy machine


def search(base: str, seed: int) -> tuple[str, list[str]]:
    """(the worker that answered, the skus it found) for one search on a connection of its own."""
    photo = {"image": ("q.png", image_bytes(seed, "PNG"), "image/png")}
    r = httpx.post(f"{base}/search", files=photo, data={"k": "3"}, timeout=30)
    assert r.status_code == 200, r.text
    return r.headers[WORKER_HEADER], [hit["sku"] for hit in r.json()["results"]]


def every_worker_agrees(
    base: str, seed: int, wanted: Callable[[list[str]], bool], workers: int = 2
) -> set[str]:
    """Search until ``workers`` distinct workers have each given an answer that is ``wanted`` (a
    worker's latest answer counts: it may lag one sync interval); the set of those workers, which
    is smaller when the rounds ran out first."""
    agreeing: set[str] = set()
    with ThreadPoolExecutor(4) as pool:
        for _ in range(ROUNDS):
            for worker, skus in pool.map(lambda _: search(base, seed), range(4)):
                if wanted(skus):
                    agreeing.add(worker)
                else:
                    agreeing.discard(worker)
            if len(agreeing) >= workers:
                return agreeing
            time.sleep(SYNC_INTERVAL_S / 2)
    return agreeing


def test_two_workers_follow_each_others_writes(tiny_encoder_path: Path, store_dir: Path) -> None:
    env = {
        "LOOKALIKE_WORKERS": "2",
        "LOOKALIKE_SYNC_INTERVAL_S": str(SYNC_INTERVAL_S),
        "LOOKALIKE_API_KEYS": API_KEY,
        "LOOKALIKE_DUPLICATE_POLICY": "off",
    }
    with running_server(tiny_encoder_path, store_dir, **env) as (base, server):
        photo = {"image": ("new.png", image_bytes(40, "PNG"), "image/png")}
        r = httpx.post(f"{base}/index", files=photo, data={"sku": "NEW-40", "title": "Dress"}, headers=KEY)
        assert r.status_code == 201, r.text
        writer, product_id = r.headers[WORKER_HEADER], r.json()["id"]
        assert writer != str(server.pid)  # answered by a worker, not the supervising process
        assert "libtorch" not in Path(f"/proc/{server.pid}/maps").read_text()  # which stays light

        found = every_worker_agrees(base, 40, lambda skus: skus[:1] == ["NEW-40"])
        assert len(found) == 2 and writer in found  # the other worker followed the change log

        assert httpx.delete(f"{base}/products/{product_id}", headers=KEY).status_code == 204
        gone = every_worker_agrees(base, 40, lambda skus: "NEW-40" not in skus)
        assert len(gone) == 2

        scrape = httpx.get(f"{base}/metrics")  # each worker's series carry its name
        assert f'worker="{scrape.headers[WORKER_HEADER]}"' in scrape.text

        r = httpx.post(f"{base}/admin/reload", headers=KEY)  # would switch one worker of two
        assert r.status_code == 409 and r.json()["error"]["code"] == "reload_needs_one_worker", r.text
    with ProductStore(store_dir) as store:
        assert check_store(store) == []
        assert store.count() == 12 and store.get_by_sku("NEW-40") is None


def test_worker_environment_carries_the_command_line(tmp_path: Path) -> None:
    settings = Settings(encoder_path=tmp_path / "e.pt", store_dir=tmp_path / "s", port=8123, workers=4)
    env = worker_environment(settings, {})
    assert env["LOOKALIKE_ENCODER_PATH"] == str(tmp_path / "e.pt")
    assert env["LOOKALIKE_STORE_DIR"] == str(tmp_path / "s")
    assert env["LOOKALIKE_PORT"] == "8123" and env["LOOKALIKE_WORKERS"] == "4"
    assert env["MALLOC_ARENA_MAX"] == "2" and env["OMP_NUM_THREADS"] == str(threads_per_worker(4))
    chosen = worker_environment(settings, {"MALLOC_ARENA_MAX": "4", "OMP_NUM_THREADS": "3"})
    assert "MALLOC_ARENA_MAX" not in chosen and "OMP_NUM_THREADS" not in chosen  # the operator's own


@pytest.mark.parametrize(("workers", "cpus", "threads"), [(1, 16, 16), (4, 16, 4), (8, 16, 2), (32, 16, 1)])
def test_threads_per_worker_share_the_cpus(workers: int, cpus: int, threads: int) -> None:
    assert threads_per_worker(workers, cpus) == threads


def test_worker_label_on_every_sample() -> None:
    registry = CollectorRegistry()
    Counter("lookalike_things", "things", ["kind"], registry=registry).labels("a").inc(3)
    text = generate_latest(WorkerLabelled(registry, "4242")).decode()
    assert 'lookalike_things_total{kind="a",worker="4242"} 3.0' in text
    assert 'lookalike_things_created{kind="a",worker="4242"}' in text
