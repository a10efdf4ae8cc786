"""A real uvicorn process under 50 concurrent searches mixed with adds and deletes: no errors."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from tests.conftest import image_bytes
from tests.server import running_server

KEY = {"X-API-Key": "live"}


async def _traffic(base: str) -> tuple[list[int], list[int], list[int], list[dict]]:
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        products = (await client.get("/products", params={"limit": 5})).json()

        async def search(seed: int) -> httpx.Response:
            photo = {"image": ("q.jpg", image_bytes(seed % 12), "image/jpeg")}
            return await client.post("/search", files=photo, data={"k": "5"})

        async def add(i: int) -> httpx.Response:
            photo = {"image": ("n.png", image_bytes(5000 + i, "PNG"), "image/png")}
            return await client.post(
                "/index", files=photo, data={"sku": f"LIVE-{i}", "title": "t"}, headers=KEY
            )

        async def delete(product_id: int) -> httpx.Response:
            return await client.delete(f"/products/{product_id}", headers=KEY)

        answers = await asyncio.gather(
            *(search(i) for i in range(50)),
            *(add(i) for i in range(10)),
            *(delete(p["id"]) for p in products),
        )
        searches = [r.status_code for r in answers[:50]]
        adds = [r.status_code for r in answers[50:60]]
        deletes = [r.status_code for r in answers[60:]]
        final = (await client.get("/products", params={"limit": 200})).json()
        return searches, adds, deletes, final


def test_concurrent_searches_adds_and_deletes_on_a_real_server(
    tiny_encoder_path: Path, store_dir: Path
) -> None:
    with running_server(
        tiny_encoder_path, store_dir, LOOKALIKE_API_KEYS="live", LOOKALIKE_DUPLICATE_POLICY="off"
    ) as (
        base,
        _,
    ):
        searches, adds, deletes, final = asyncio.run(_traffic(base))
        health = httpx.get(f"{base}/health").json()
    assert searches == [200] * 50
    assert adds == [201] * 10 and deletes == [204] * 5
    assert len(final) == 12 + 10 - 5 == health["products"] == health["vectors"]
    assert {p["sku"] for p in final} >= {f"LIVE-{i}" for i in range(10)}
