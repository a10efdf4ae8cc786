"""Each refusal of the store reaches the client as one exact answer (status, code, message,
details), whichever route met it: the mapping lives in app/errors.py, these pin what it sends."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from app.config import Settings
from app.main import create_app
from index import NearDuplicate
from index.records import (
    DuplicateSkuError,
    EncoderMismatchError,
    LastImageError,
    NearDuplicateError,
    StoreError,
    TooManyImagesError,
)
from tests.app.conftest import API_KEY, make_client
from tests.conftest import image_bytes

AUTH = {"X-API-Key": API_KEY}
MISSING = 999_999


def photos(*seeds: int) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("image", (f"{s}.png", image_bytes(s, "PNG"), "image/png")) for s in seeds]


def error(r: Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    return r.json()["error"]


def test_duplicate_skus_answer_409_with_the_skus_where_a_batch_names_several(client: TestClient) -> None:
    taken = {"code": "duplicate_sku", "message": "a product with sku 'SKU-01' already exists"}
    r = client.post("/index", files=photos(100), data={"sku": "SKU-01", "title": "t"}, headers=AUTH)
    assert error(r, 409) == taken  # no details: the request named one sku
    new = client.post("/index", files=photos(101), data={"sku": "NEW", "title": "t"}, headers=AUTH)
    pid = new.json()["id"]
    assert error(client.patch(f"/products/{pid}", json={"sku": "SKU-01"}, headers=AUTH), 409) == taken
    r = client.put(f"/products/{pid}", json={"sku": "SKU-01", "title": "t"}, headers=AUTH)
    assert error(r, 409) == taken

    manifest = [{"sku": s, "title": "t", "images": [f"{i}.png"]} for i, s in enumerate(("B", "SKU-01", "B"))]
    files = [("image", (f"{i}.png", image_bytes(200 + i, "PNG"), "image/png")) for i in range(3)]
    r = client.post("/index/batch", data={"manifest": json.dumps(manifest)}, files=files, headers=AUTH)
    assert error(r, 409) == {
        "code": "duplicate_sku",
        "message": "these skus exist or repeat: ['B', 'SKU-01']",
        "details": ["B", "SKU-01"],
    }
    assert client.get("/health").json()["products"] == 13  # only NEW was added


def test_unknown_products_and_images_answer_404_on_every_route(client: TestClient) -> None:
    gone = {"code": "product_not_found", "message": f"no product with id {MISSING}"}
    calls = [
        client.get(f"/products/{MISSING}"),
        client.get(f"/products/{MISSING}/image"),
        client.get(f"/products/{MISSING}/images/1"),
        client.get(f"/products/{MISSING}/similar"),
        client.patch(f"/products/{MISSING}", json={"title": "x"}, headers=AUTH),
        client.put(f"/products/{MISSING}", json={"sku": "X", "title": "x"}, headers=AUTH),
        client.post(f"/products/{MISSING}/images", files=photos(300), headers=AUTH),
        client.put(f"/products/{MISSING}/images", files=photos(300), headers=AUTH),
        client.delete(f"/products/{MISSING}", headers=AUTH),
    ]
    for r in calls:
        assert error(r, 404) == gone, r.request.url
    product = client.get("/products", params={"limit": 1}).json()[0]
    no_image = {"code": "image_not_found", "message": f"product {product['id']} has no image {MISSING}"}
    assert error(client.get(f"/products/{product['id']}/images/{MISSING}"), 404) == no_image
    assert error(client.delete(f"/products/{product['id']}/images/{MISSING}", headers=AUTH), 404) == no_image


def test_photo_limits_answer_409_last_image_and_422_too_many_images(client: TestClient) -> None:
    product = client.get("/products", params={"limit": 1}).json()[0]
    pid, [image] = product["id"], product["images"]
    r = client.delete(f"/products/{pid}/images/{image['id']}", headers=AUTH)
    assert error(r, 409) == {
        "code": "last_image",
        "message": f"product {pid} keeps at least one image; delete the product instead",
    }
    r = client.post(f"/products/{pid}/images", files=photos(*range(400, 420)), headers=AUTH)  # 1 + 20
    assert error(r, 422) == {"code": "too_many_images", "message": "a product holds at most 20 images"}
    assert client.get(f"/products/{pid}").json()["images"] == [image]


def test_a_refused_near_duplicate_answers_409_with_each_conflict(
    tiny_encoder_path: Path, store_dir: Path
) -> None:
    with make_client(tiny_encoder_path, store_dir, duplicate_policy="refuse") as client:
        r = client.post("/index", files=photos(7), data={"sku": "AGAIN", "title": "t"}, headers=AUTH)
        body = error(r, 409)
        [dup] = body.pop("details")
        near = f"image 0 of 'AGAIN' nearly equals an image of product 'SKU-07' (cosine {dup['score']:.3f})"
        assert body == {"code": "near_duplicate", "message": near}
        sku07 = next(p for p in client.get("/products", params={"limit": 20}).json() if p["sku"] == "SKU-07")
        assert dup == {
            "image_index": 0,
            "other_product_id": sku07["id"],
            "other_sku": "SKU-07",
            "other_image_id": sku07["images"][0]["id"],
            "score": dup["score"],
        }
        assert dup["score"] >= 0.99
        r = client.post(f"/products/{sku07['id']}/images", files=photos(8), headers=AUTH)  # SKU-08's photo
        assert error(r, 409)["code"] == "near_duplicate"
        assert client.get("/health").json()["products"] == 12


NEAR = NearDuplicate("NEW", 1, 4, "OLD", 9, 0.97)
NEAR_OUT = {"image_index": 1, "other_product_id": 4, "other_sku": "OLD", "other_image_id": 9, "score": 0.97}


def raising(exc: Exception) -> TestClient:
    """The real app (no store loaded) with one more route, GET /raise, that raises ``exc``."""
    app = create_app(Settings(api_keys=API_KEY))

    @app.get("/raise")
    def fail() -> None:
        raise exc

    return TestClient(app, raise_server_exceptions=False)


@pytest.mark.parametrize(
    ("exc", "status", "code", "details"),
    [
        (DuplicateSkuError("A-1"), 409, "duplicate_sku", None),
        (LastImageError(3), 409, "last_image", None),
        (TooManyImagesError(20), 422, "too_many_images", None),
        (NearDuplicateError([NEAR]), 409, "near_duplicate", [NEAR_OUT]),
    ],
)
def test_each_refusal_of_the_store_has_one_answer(
    exc: StoreError, status: int, code: str, details: list | None
) -> None:
    r = raising(exc).get("/raise")
    expected = {"code": code, "message": str(exc), **({"details": details} if details else {})}
    assert (r.status_code, r.json()) == (status, {"error": expected})


def test_a_store_opened_with_another_encoder_is_no_client_error() -> None:
    """EncoderMismatchError comes from opening a store, never from a request: a server fault."""
    r = raising(EncoderMismatchError("store holds 8-d embeddings, encoder makes 4-d")).get("/raise")
    assert (r.status_code, r.json()["error"]["code"]) == (500, "internal_error")
