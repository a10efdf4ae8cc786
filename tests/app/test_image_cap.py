"""The photo cap per product holds under concurrent adds: it is checked where the write is made."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import numpy as np

from app.schemas import MAX_IMAGES
from index import NewProduct, ProductStore
from index.records import TooManyImagesError
from tests.app.conftest import API_KEY
from tests.conftest import image_bytes
from tests.index.conftest import DIM, FP, unit
from tests.server import running_server

CLIENTS, EACH = 8, 10  # 1 + 10 fits the cap of 20, 1 + 2 x 10 does not


def _concurrently(n: int, call) -> list:
    """``call(i)`` from ``n`` threads released together; their results in order."""
    barrier, results = threading.Barrier(n), [None] * n

    def run(i: int) -> None:
        barrier.wait(timeout=60)
        results[i] = call(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    return results


def test_concurrent_photo_adds_over_http_never_pass_the_cap(tiny_encoder_path: Path, store_dir: Path) -> None:
    assert 1 + EACH <= MAX_IMAGES < 1 + 2 * EACH
    with running_server(tiny_encoder_path, store_dir, LOOKALIKE_API_KEYS=API_KEY) as (base, _):
        product = httpx.get(f"{base}/products", params={"limit": 1}).json()[0]
        assert len(product["images"]) == 1

        def add(i: int) -> int:
            photos = [(f"{j}.png", image_bytes(1000 + 100 * i + j, "PNG"), "image/png") for j in range(EACH)]
            r = httpx.post(
                f"{base}/products/{product['id']}/images",
                files=[("image", photo) for photo in photos],
                headers={"X-API-Key": API_KEY},
                timeout=120,
            )
            assert r.status_code in (200, 201, 422), r.text
            if r.status_code == 422:
                assert r.json()["error"]["code"] == "too_many_images"
            return r.status_code

        statuses = _concurrently(CLIENTS, add)
        held = len(httpx.get(f"{base}/products/{product['id']}").json()["images"])
    assert held <= MAX_IMAGES, f"{held} photos after {statuses}"
    assert held == 1 + EACH and sum(s != 422 for s in statuses) == 1, statuses


def test_concurrent_add_images_in_one_store_never_pass_the_cap(tmp_path: Path) -> None:
    vectors = unit(np.random.default_rng(0), 1 + CLIENTS * EACH)
    with ProductStore(tmp_path / "store", FP, DIM) as store:
        first = store.add_product(NewProduct("SKU-0", "zero", None, None, {}, (image_bytes(0),), vectors[:1]))

        def add(i: int) -> str:
            rows = slice(1 + i * EACH, 1 + (i + 1) * EACH)
            blobs = [image_bytes(10 + i * EACH + j) for j in range(EACH)]
            try:
                store.add_images(first.id, blobs, vectors[rows], max_images=MAX_IMAGES)
            except TooManyImagesError as exc:
                return str(exc)
            return "added"

        outcomes = _concurrently(CLIENTS, add)
        product = store.get_product(first.id)
        assert product is not None and len(product.images) == 1 + EACH, outcomes
        assert outcomes.count("added") == 1 and all("at most 20" in o for o in outcomes if o != "added")
        assert len(list((tmp_path / "store").rglob("*.jpg"))) == 1 + EACH  # no file of a refused add stays
