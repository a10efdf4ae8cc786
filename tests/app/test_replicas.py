"""Two real servers (uvicorn processes, each with its own store directory and FAISS copy) over one
real PostgreSQL database: what one replica writes, the other finds after its next sync."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.conftest import image_bytes
from tests.server import running_server

KEY = {"X-API-Key": "replica-key"}
SYNC_INTERVAL_S = 0.2


def eventually(condition: Callable[[], bool], within_s: float = 60.0) -> bool:
    """Poll ``condition``; the deadline is generous for a busy machine, not a latency claim."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(SYNC_INTERVAL_S / 2)
    return False


def add(base: str, sku: str, seed: int) -> dict:
    photo = {"image": (f"{sku}.png", image_bytes(seed, "PNG"), "image/png")}
    r = httpx.post(f"{base}/index", files=photo, data={"sku": sku, "title": f"Dress {sku}"}, headers=KEY)
    assert r.status_code == 201, r.text
    return r.json()


def top_skus(base: str, seed: int, k: int = 3) -> list[str]:
    photo = {"image": ("q.png", image_bytes(seed, "PNG"), "image/png")}
    r = httpx.post(f"{base}/search", files=photo, data={"k": str(k)}, timeout=30)
    assert r.status_code == 200, r.text
    return [hit["sku"] for hit in r.json()["results"]]


def test_two_replicas_share_one_catalog(tiny_encoder_path: Path, database_url: str, tmp_path: Path) -> None:
    env = {
        "LOOKALIKE_DATABASE_URL": database_url,
        "LOOKALIKE_SYNC_INTERVAL_S": str(SYNC_INTERVAL_S),
        "LOOKALIKE_API_KEYS": "replica-key",
        "LOOKALIKE_DUPLICATE_POLICY": "off",
    }
    with (
        running_server(tiny_encoder_path, tmp_path / "a", **env) as (a, _),
        running_server(tiny_encoder_path, tmp_path / "b", **env) as (b, _),
    ):
        added = [add(a, f"A-{seed}", seed) for seed in (11, 12, 13)]
        target = added[1]
        assert top_skus(a, 12)[0] == "A-12"  # the writer's own FAISS has it at once

        assert eventually(lambda: top_skus(b, 12)[:1] == ["A-12"])
        photo = httpx.get(f"{b}{target['images'][0]['url']}")  # b never had the file: from the database
        assert photo.status_code == 200 and photo.content == image_bytes(12, "PNG")
        assert not any((tmp_path / "a").rglob("*.sqlite3")) and not any((tmp_path / "b").rglob("*.sqlite3"))

        r = httpx.delete(f"{a}/products/{target['id']}", headers=KEY)
        assert r.status_code == 204
        assert httpx.get(f"{b}/products/{target['id']}").status_code == 404  # metadata: at once
        assert eventually(lambda: "A-12" not in top_skus(b, 12, k=5))

        add(b, "B-14", 14)  # and the other way round
        assert eventually(lambda: top_skus(a, 14)[:1] == ["B-14"])

        def counts(base: str) -> tuple[int, int]:
            health = httpx.get(f"{base}/health").json()
            return health["products"], health["vectors"]

        assert eventually(lambda: counts(a) == counts(b) == (3, 3))
