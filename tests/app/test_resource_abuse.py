"""Cheap requests that would cost gigabytes or pile up work: each is refused at once, and an
ordinary search sent alongside is still served."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from app.batching import Overloaded
from app.embedder import Embedder
from encoder import load_encoder
from tests.app.conftest import API_KEY, make_client
from tests.conftest import image_bytes
from tests.encoder.test_images import _png_header_only, big_jpeg, one_bit_png
from tests.server import running_server

AUTH = {"X-API-Key": API_KEY}
BIG = big_jpeg()  # 4000 x 4000
THIN_CROPS = ["0,0,0.0001,1", "0,0,1,0.0001", "0.5,0.5,0.001,0.001"]
HOSTILE_SHAPES = [
    ("20000x1 PNG", one_bit_png(20_000, 1)),
    ("1x20000 PNG", one_bit_png(1, 20_000)),
    ("640000x1 PNG header", _png_header_only(640_000, 1)),
    ("8x8 PNG", one_bit_png(8, 8)),
]


def _photo(data: bytes) -> dict[str, tuple[str, bytes, str]]:
    return {"image": ("p.png", data, "image/png")}


@pytest.fixture()
def big_client(tiny_encoder_path: Path, store_dir: Path) -> Iterator[TestClient]:
    with make_client(tiny_encoder_path, store_dir, max_upload_bytes=10 * 1024 * 1024) as client:
        yield client


def test_extreme_shapes_and_thin_crops_are_422_on_every_upload_route(big_client: TestClient) -> None:
    client = big_client
    before = client.get("/health").json()["products"]
    for name, data in HOSTILE_SHAPES:
        answers = [
            client.post("/search", files=_photo(data)),
            client.post("/index", files=_photo(data), data={"sku": "ODD-1", "title": "odd"}, headers=AUTH),
            client.post("/products/1/images", files=_photo(data), headers=AUTH),
        ]
        for r in answers:
            assert (r.status_code, r.json()["error"]["code"]) == (422, "invalid_image"), f"{name}: {r.text}"
            assert "pixels" in r.json()["error"]["message"]
    for crop in THIN_CROPS:
        r = client.post("/search", files=_photo(BIG), data={"crop": crop})
        assert (r.status_code, r.json()["error"]["code"]) == (422, "invalid_crop"), f"{crop}: {r.text}"
        assert "crop" in r.json()["error"]["message"]
    assert client.get("/health").json()["products"] == before
    assert client.post("/search", files=_photo(image_bytes(1))).status_code == 200
    assert client.post("/search", files=_photo(BIG), data={"crop": "0.2,0.2,0.3,0.5"}).status_code == 200


def _vm_hwm_kib(pid: int) -> int:
    """The process's peak resident memory so far (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM line")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads peak RSS from /proc")
def test_a_real_server_refuses_them_without_growing_and_limits_connections(
    tiny_encoder_path: Path, store_dir: Path
) -> None:
    """Each hostile photo cost 0.8 to 4 GB of peak RSS in one request before the shape checks;
    ordinary searches among them are served. Then `lookalike serve` is seen to pass
    LOOKALIKE_LIMIT_CONCURRENCY to uvicorn: with 7 idle connections open, the 8th is answered 503
    at once, and served again when they close. (One server for both: each start costs seconds.)"""
    limits = {"LOOKALIKE_MAX_UPLOAD_BYTES": str(10 * 1024 * 1024), "LOOKALIKE_LIMIT_CONCURRENCY": "8"}
    with (
        running_server(tiny_encoder_path, store_dir, **limits) as (base, server),
        httpx.Client(base_url=base, timeout=120) as client,
    ):
        warm = client.post("/search", files=_photo(image_bytes(2)))
        assert warm.status_code == 200, warm.text
        peak = _vm_hwm_kib(server.pid)
        requests: list[tuple[bytes, dict[str, str]]] = [(data, {}) for _, data in HOSTILE_SHAPES]
        requests += [(BIG, {"crop": crop}) for crop in THIN_CROPS]

        def send(i: int) -> httpx.Response:
            if i % 2:  # an ordinary shopper between the hostile ones
                return client.post("/search", files=_photo(image_bytes(i % 12)))
            data, form = requests[i // 2]
            return client.post("/search", files=_photo(data), data=form)

        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(send, range(2 * len(requests))))
        for i, r in enumerate(answers):
            assert r.status_code == (200 if i % 2 else 422), f"request {i}: {r.text}"
        grown_mib = (_vm_hwm_kib(server.pid) - peak) / 1024
        assert grown_mib < 300, f"peak RSS grew {grown_mib:.0f} MiB"
        client.close()  # its pooled connections count too

        host, port = base.removeprefix("http://").split(":")
        idle = [socket.create_connection((host, int(port))) for _ in range(7)]
        try:
            assert _eventually_status(f"{base}/health", 503)
        finally:
            for conn in idle:
                conn.close()
        assert _eventually_status(f"{base}/health", 200)


class _Gate(threading.Event):
    """Set to let the decodes through; ``started``: one of them has begun."""

    def __init__(self) -> None:
        super().__init__()
        self.started = threading.Event()


@contextmanager
def gated_decodes(embedder: Embedder) -> Iterator[_Gate]:
    """Every decode of ``embedder`` waits for the event (set on leaving): slow photos, on demand."""
    gate = _Gate()
    real = embedder.preprocess

    def slow(data: bytes, crop: Any = None) -> Any:
        gate.started.set()
        if not gate.wait(timeout=60):
            raise AssertionError("the gate was never opened")
        return real(data, crop)

    embedder.preprocess = slow  # type: ignore[assignment]
    try:
        yield gate
    finally:
        gate.set()
        embedder.preprocess = real


def test_a_burst_of_slow_decodes_counts_against_the_queue(tiny_encoder_path: Path) -> None:
    """The decode pool queues without limit: before the fix none of the 6 was refused."""
    embedder = Embedder(load_encoder(tiny_encoder_path), max_queue=2, max_wait_ms=1)

    async def main() -> list[Any]:
        embedder.start()
        try:
            with gated_decodes(embedder) as gate:
                calls = [asyncio.ensure_future(embedder.embed_bytes(image_bytes(i))) for i in range(6)]
                await asyncio.sleep(0)  # each call is admitted or refused before it first waits
                assert embedder.in_flight == 2
                refused = [c for c in calls if c.done()]
                gate.set()
                answers = await asyncio.gather(*calls, return_exceptions=True)
                assert len(refused) == 4
                return answers
        finally:
            await embedder.close()

    answers = asyncio.run(main())
    assert [isinstance(a, Overloaded) for a in answers] == [False, False, True, True, True, True]
    assert "being decoded or waiting" in str(answers[2])
    assert all(a.shape == (embedder.encoder.embed_dim,) for a in answers[:2])


def test_a_decode_that_takes_too_long_is_overloaded_and_counted_until_done(tiny_encoder_path: Path) -> None:
    embedder = Embedder(load_encoder(tiny_encoder_path), max_queue=4, decode_timeout_s=0.2)

    async def main() -> None:
        embedder.start()
        try:
            with gated_decodes(embedder) as gate:
                with pytest.raises(Overloaded, match="not decoded within 0.2 s"):
                    await embedder.embed_bytes(image_bytes(1))
                # a decode that started holds its thread (and slot) until done; one still queued
                # in the pool when the time ran out was cancelled and never starts
                assert embedder.in_flight == int(gate.started.is_set())
                gate.set()
                await _until(lambda: embedder.in_flight == 0)
            assert (await embedder.embed_bytes(image_bytes(1))).shape == (embedder.encoder.embed_dim,)
        finally:
            await embedder.close()

    asyncio.run(main())


async def _until(condition: Callable[[], bool], limit_s: float = 30) -> None:
    """Wait for ``condition``; the limit only catches a hang."""
    deadline = time.monotonic() + limit_s
    while not condition():
        assert time.monotonic() < deadline, "condition never came true"
        await asyncio.sleep(0.01)


def test_over_http_the_burst_gets_503_with_retry_after(tiny_encoder_path: Path, store_dir: Path) -> None:
    # re-ranking off: with it a search decodes twice (pixels and local features), two places
    with make_client(tiny_encoder_path, store_dir, max_queue=2, rerank="off") as client:
        embedder: Embedder = client.app.state.runtime.embedder  # type: ignore[attr-defined]
        with gated_decodes(embedder) as gate, ThreadPoolExecutor(6) as pool:
            sent = [pool.submit(client.post, "/search", files=_photo(image_bytes(i))) for i in range(6)]
            deadline = time.monotonic() + 60  # only catches a hang: 4 answers come while 2 decode
            while sum(f.done() for f in sent) < 4:
                assert time.monotonic() < deadline, "fewer than 4 answers came back while 2 decoded"
                time.sleep(0.01)
            assert embedder.in_flight == 2 and sum(f.done() for f in sent) == 4
            gate.set()
            answers = [f.result(timeout=60) for f in sent]
        statuses = sorted(r.status_code for r in answers)
        assert statuses == [200, 200, 503, 503, 503, 503], [r.text for r in answers]
        for r in answers:
            if r.status_code == 503:
                assert r.headers["retry-after"] == "1" and r.json()["error"]["code"] == "overloaded"


def _eventually_status(url: str, status: int, limit_s: float = 30) -> bool:
    """Whether ``url`` answers ``status`` (a new connection each time) within the hang limit."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if httpx.get(url).status_code == status:
            return True
        time.sleep(0.05)
    return False
