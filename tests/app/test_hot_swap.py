"""POST /admin/reload: a live switch to a second encoder and the store built with it.

A real uvicorn server searched continuously while it switches (no failed request, the new
fingerprint afterwards), the refusals that leave the old pair serving, and the drain: a request
holding the old pair finishes on it, and the old store closes only after that.
"""

from __future__ import annotations

import asyncio
import gc
import re
import sqlite3
import weakref
from pathlib import Path

import httpx
import pytest
import torch
from fastapi.testclient import TestClient
from starlette.datastructures import State

from app.config import Settings
from app.metrics import Metrics
from app.swap import ReloadRefused, Swapper
from encoder import Encoder, EncoderConfig, save_encoder
from tests.app.conftest import API_KEY, make_client
from tests.conftest import build_store, image_bytes
from tests.server import running_server

KEY = {"X-API-Key": API_KEY}


@pytest.fixture(scope="module")
def second_encoder(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """Another tiny encoder (other random weights): (path, fingerprint)."""
    torch.manual_seed(1)
    path = tmp_path_factory.mktemp("encoder-b") / "encoder-b.pt"
    return path, save_encoder(Encoder(EncoderConfig(arch="mobilenet_v3_small", image_size=64)), path)


@pytest.fixture(scope="module")
def second_store(tmp_path_factory: pytest.TempPathFactory, second_encoder: tuple[Path, str]) -> Path:
    """9 products (the first store has 12), embedded by the second encoder."""
    root = tmp_path_factory.mktemp("catalog-b")
    for i in range(9):
        (root / "photos" / "blue").mkdir(parents=True, exist_ok=True)
        (root / "photos" / "blue" / f"B-{i}.jpg").write_bytes(image_bytes(100 + i))
    return build_store(root / "photos", second_encoder[0], root / "store")


def _roots(*paths: Path) -> str:
    """LOOKALIKE_RELOAD_ROOTS holding ``paths`` (those of the second pair live in other folders)."""
    return ",".join(str(p.parent) for p in paths)


def _fingerprint_of_served(client: TestClient | httpx.Client) -> str:
    return client.get("/health").json()["encoder"]["fingerprint"]


def _search(client: TestClient | httpx.Client, seed: int = 0) -> httpx.Response:
    photo = {"image": ("q.jpg", image_bytes(seed), "image/jpeg")}
    return client.post("/search", files=photo, data={"k": "3"})


async def _search_during_swap(
    base: str, encoder: Path, store: Path, searchers: int = 4
) -> tuple[list[tuple[int, str | None]], list[tuple[int, str | None]], httpx.Response]:
    """Searchers loop until the reload has answered and each has searched 3 times more:
    (answers before the reload answered, answers after, the reload's answer)."""
    before: list[tuple[int, str | None]] = []
    after: list[tuple[int, str | None]] = []
    reloaded = asyncio.Event()
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:

        async def searcher(n: int) -> None:
            extra = 0
            while extra < 3:
                done = reloaded.is_set()
                photo = {"image": ("q.jpg", image_bytes(n), "image/jpeg")}
                r = await client.post("/search", files=photo, data={"k": "3"})
                body = r.json() if r.status_code == 200 else {}
                (after if done else before).append((r.status_code, body.get("encoder_fingerprint")))
                if done:
                    extra += 1

        async def reload() -> httpx.Response:
            while len(before) < 2 * searchers:  # searches are flowing before the switch starts
                await asyncio.sleep(0.01)
            r = await client.post(
                "/admin/reload", json={"encoder_path": str(encoder), "store_dir": str(store)}, headers=KEY
            )
            reloaded.set()
            return r

        *_, answer = await asyncio.gather(*(searcher(n) for n in range(searchers)), reload())
    return before, after, answer


def test_searches_never_fail_while_the_server_switches_encoder_and_store(
    tiny_encoder_path: Path, store_dir: Path, second_encoder: tuple[Path, str], second_store: Path
) -> None:
    new_path, new_fp = second_encoder
    roots = f"{store_dir.parent},{new_path.parent},{second_store.parent}"
    with running_server(
        tiny_encoder_path, store_dir, LOOKALIKE_API_KEYS=API_KEY, LOOKALIKE_RELOAD_ROOTS=roots
    ) as (
        base,
        _,
    ):
        old_fp = httpx.get(f"{base}/health").json()["encoder"]["fingerprint"]
        before, after, answer = asyncio.run(_search_during_swap(base, new_path, second_store))
        health = httpx.get(f"{base}/health").json()
        metrics = httpx.get(f"{base}/metrics").text
        products = httpx.get(f"{base}/products", params={"limit": 200}).json()

    assert old_fp != new_fp
    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert report["changed"] and report["drained"]
    assert report["previous"]["fingerprint"] == old_fp and report["previous"]["products"] == 12
    assert report["current"]["fingerprint"] == new_fp and report["current"]["products"] == 9
    assert [status for status, _ in before + after] == [200] * len(before + after)
    assert {fp for _, fp in before} <= {old_fp, new_fp} and (200, old_fp) in before
    assert {fp for _, fp in after} == {new_fp}
    assert health["encoder"]["fingerprint"] == new_fp
    assert health["products"] == health["vectors"] == 9
    assert {p["sku"] for p in products} == {f"B-{i}" for i in range(9)}
    assert f'fingerprint="{new_fp}"' in metrics and old_fp not in metrics
    assert re.search(r"^lookalike_catalog_products 9\.0$", metrics, re.M)
    assert re.search(r'^lookalike_reloads_total\{outcome="swapped"\} 1\.0$', metrics, re.M)


def _refused(client: TestClient, body: dict[str, str], status: int, code: str) -> None:
    r = client.post("/admin/reload", json=body, headers=KEY)
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code
    assert "still serving" in r.json()["error"]["message"]


def test_refused_reloads_leave_the_old_pair_serving(
    tiny_encoder_path: Path,
    store_dir: Path,
    second_encoder: tuple[Path, str],
    second_store: Path,
    tmp_path: Path,
) -> None:
    new_path, _ = second_encoder
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(new_path.read_bytes()[:5000])
    not_a_db = tmp_path / "not-a-db"
    not_a_db.mkdir()
    (not_a_db / "catalog.sqlite3").write_bytes(b"this is not an SQLite database" * 100)
    (tmp_path / "empty").mkdir()
    roots = (
        f"{tmp_path},{store_dir.parent},{tiny_encoder_path.parent},{new_path.parent},{second_store.parent}"
    )
    with make_client(tiny_encoder_path, store_dir, reload_roots=roots) as client:
        served = _fingerprint_of_served(client)
        first = _search(client).json()["results"]
        cases = [
            ({"encoder_path": str(tmp_path / "missing.pt")}, 422, "encoder_not_found"),
            ({"encoder_path": str(tmp_path)}, 422, "encoder_not_found"),  # a directory
            ({"store_dir": str(tmp_path / "missing")}, 422, "store_not_found"),
            ({"store_dir": str(tmp_path / "empty")}, 422, "store_not_found"),
            ({"encoder_path": str(corrupt), "store_dir": str(second_store)}, 422, "invalid_encoder"),
            ({"store_dir": str(not_a_db)}, 422, "invalid_store"),  # the load itself fails
            ({"encoder_path": str(new_path)}, 409, "encoder_mismatch"),  # the store being served
            ({"store_dir": str(second_store)}, 409, "encoder_mismatch"),  # old encoder, new store
        ]
        for body, status, code in cases:
            _refused(client, body, status, code)
            assert _fingerprint_of_served(client) == served
            assert _search(client).json()["results"] == first  # same pair, same answer
        assert not (tmp_path / "missing").exists()  # a reload never creates a store
        typo = client.post("/admin/reload", json={"store": str(second_store)}, headers=KEY)
        assert typo.status_code == 422 and typo.json()["error"]["code"] == "invalid_request"
        metrics = client.get("/metrics").text
    assert re.search(rf'^lookalike_reloads_total\{{outcome="refused"\}} {len(cases)}\.0$', metrics, re.M)


def test_reload_needs_the_api_key(tiny_encoder_path: Path, store_dir: Path) -> None:
    with make_client(tiny_encoder_path, store_dir) as client:
        assert client.post("/admin/reload").status_code == 401
        assert client.post("/admin/reload", headers={"X-API-Key": "wrong"}).status_code == 403
    with make_client(tiny_encoder_path, store_dir, api_keys="") as client:
        r = client.post("/admin/reload", headers=KEY)
        assert r.status_code == 403 and r.json()["error"]["code"] == "writes_disabled"


def test_reloading_what_is_served_changes_nothing(tiny_encoder_path: Path, store_dir: Path) -> None:
    with make_client(tiny_encoder_path, store_dir) as client:
        served = _fingerprint_of_served(client)
        for body in (None, {"encoder_path": str(tiny_encoder_path), "store_dir": str(store_dir)}):
            r = client.post("/admin/reload", json=body, headers=KEY)
            assert r.status_code == 200, r.text
            assert not r.json()["changed"] and r.json()["current"]["fingerprint"] == served
            assert _search(client).status_code == 200


def test_reload_by_another_name_for_the_same_store_changes_nothing(
    tiny_encoder_path: Path, store_dir: Path, tmp_path: Path
) -> None:
    """A symlink to the served store is the same store: never opened twice."""
    link = tmp_path / "current"
    link.symlink_to(store_dir, target_is_directory=True)
    with make_client(tiny_encoder_path, store_dir) as client:
        r = client.post("/admin/reload", json={"store_dir": str(link)}, headers=KEY)
        assert r.status_code == 200 and not r.json()["changed"]


def test_a_request_holding_the_old_pair_finishes_on_it_before_it_closes(
    tiny_encoder_path: Path, store_dir: Path, second_encoder: tuple[Path, str], second_store: Path
) -> None:
    settings = Settings(
        encoder_path=tiny_encoder_path,
        store_dir=store_dir,
        max_wait_ms=1,
        reload_roots=_roots(second_encoder[0], second_store),
    )

    async def scenario() -> None:
        gc.disable()  # what a retired pair frees must go without waiting for the cycle collector
        swapper = Swapper(State(), settings, Metrics(), drain_timeout_s=0.2)
        await swapper.start()
        old = swapper.current
        try:
            with old.lease():  # a request that started before the switch
                report = await swapper.reload(second_encoder[0], second_store)
                assert report.changed and not report.drained  # it waited for this request in vain
                assert swapper.current is not old and swapper.current.fingerprint == second_encoder[1]
                _, hits = await old.embedder.search_bytes(image_bytes(0), 20)  # still answers, old store
                assert len(hits) == 12 and old.store.count() == 12
                _, hits = await swapper.current.embedder.search_bytes(image_bytes(0), 20)
                assert len(hits) == 9
            await asyncio.wait_for(_closed(old.store.count), timeout=60)  # closed once released
            gone = [weakref.ref(o) for o in (old, old.embedder, old.embedder.encoder, old.store)]
            del old
            assert [ref() for ref in gone] == [None] * 4  # freed at once, no garbage collection needed
        finally:
            gc.enable()
            await swapper.stop()

    asyncio.run(scenario())


async def _closed(count: object) -> None:
    assert callable(count)
    while True:
        try:
            count()
        except sqlite3.ProgrammingError:  # "Cannot operate on a closed database"
            return
        await asyncio.sleep(0.02)


def test_one_reload_at_a_time(
    tiny_encoder_path: Path, store_dir: Path, second_encoder: tuple[Path, str], second_store: Path
) -> None:
    settings = Settings(
        encoder_path=tiny_encoder_path,
        store_dir=store_dir,
        reload_roots=_roots(second_encoder[0], second_store),
    )

    async def scenario() -> None:
        swapper = Swapper(State(), settings, Metrics())
        await swapper.start()
        try:
            first = asyncio.create_task(swapper.reload(second_encoder[0], second_store))
            await asyncio.sleep(0)  # the first reload holds the lock and waits for its thread
            with pytest.raises(ReloadRefused) as refused:
                await swapper.reload(second_encoder[0], second_store)
            assert refused.value.code == "reload_in_progress"
            assert (await first).changed and swapper.current.fingerprint == second_encoder[1]
        finally:
            await swapper.stop()

    asyncio.run(scenario())
