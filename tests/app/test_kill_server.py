"""A real server killed with SIGKILL while two clients add and delete over HTTP loses nothing it
acknowledged: rounds of start, traffic, SIGKILL mid-traffic, restart on the same SQLite store, check.
"""

from __future__ import annotations

import itertools
import random
import signal
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

from index import ProductStore
from ops.check import check_store
from tests.acknowledged import Ledger, check
from tests.app.conftest import API_KEY
from tests.conftest import image_bytes
from tests.server import running_server

ROUNDS = 3
WRITES_BEFORE_KILL = 6  # acknowledged writes of both clients in a round before the kill may come


def client(name: str, base: str, ledger: Ledger, seeds: itertools.count[int], stop: threading.Event) -> None:
    """Add two products, delete one of its own, and so on, until ``stop`` or the first request without
    an answer (the server is gone: that one write is the only uncertain one); record every answer."""
    with httpx.Client(base_url=base, headers={"X-API-Key": API_KEY}, timeout=60) as http:
        for step in itertools.count():
            if stop.is_set():
                return
            own = [a for a in ledger.live() if a.sku.startswith(name)]
            if step % 3 == 2 and own:
                victim = own[0].product_id
                try:
                    r = http.delete(f"/products/{victim}")
                except httpx.TransportError:
                    ledger.no_answer(victim)
                    return
                assert r.status_code == 204, r.text
                ledger.delete_answered(victim)
                continue
            seed = next(seeds)
            photo = image_bytes(seed)
            sku = f"{name}-{seed}"
            try:
                r = http.post("/index", files={"image": ("p.jpg", photo)}, data={"sku": sku, "title": sku})
            except httpx.TransportError:
                ledger.no_answer()
                return
            assert r.status_code == 201, r.text
            ledger.add_answered(r, sku, (photo,))


def traffic_until_killed(
    base: str,
    server: subprocess.Popen[bytes],
    ledger: Ledger,
    seeds: itertools.count[int],
    rng: random.Random,
) -> None:
    """Two writing clients; SIGKILL the server once they have some acknowledged writes, mid-request."""
    stop = threading.Event()
    before = len(ledger.added) + len(ledger.deleted)
    errors: list[BaseException] = []

    def run(name: str) -> None:
        try:
            client(name, base, ledger, seeds, stop)
        except BaseException as exc:  # an unexpected answer: the test fails below
            errors.append(exc)
            stop.set()

    threads = [threading.Thread(target=run, args=(name,)) for name in ("A", "B")]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 120  # only to detect a hang
    while len(ledger.added) + len(ledger.deleted) - before < WRITES_BEFORE_KILL and not stop.is_set():
        assert time.monotonic() < deadline, "the clients made no progress"
        time.sleep(0.01)
    time.sleep(rng.uniform(0, 0.3))
    server.send_signal(signal.SIGKILL)
    server.wait(timeout=30)
    stop.set()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert server.returncode == -signal.SIGKILL


@pytest.mark.slow
def test_sigkilled_server_loses_no_acknowledged_write(tiny_encoder_path: Path, store_dir: Path) -> None:
    rng = random.Random(7)
    ledger = Ledger()
    seeds = itertools.count(1000)  # image_bytes(seed): a distinct photo for every add
    env = {"LOOKALIKE_API_KEYS": API_KEY, "LOOKALIKE_DUPLICATE_POLICY": "off"}
    for round_ in range(ROUNDS + 1):
        with running_server(tiny_encoder_path, store_dir, **env) as (base, server):
            with httpx.Client(base_url=base, timeout=60) as http:
                assert check(http, ledger) == [], f"after {round_} kills"
            if round_ == ROUNDS:
                break
            traffic_until_killed(base, server, ledger, seeds, rng)
    assert len(ledger.live()) >= ROUNDS * 2 and len(ledger.deleted) >= ROUNDS
    with ProductStore(store_dir) as store:
        assert check_store(store) == []
