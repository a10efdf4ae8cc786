"""Attributes must stay valid JSON: NaN, Infinity, deep nesting and oversized objects are 422 on
every route that writes them, and nothing stored changes.

Python's json reads and writes NaN; a row holding one made every attribute-filtered query fail
on SQLite < 3.42 (and PostgreSQL refuses it as a 500).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.app.conftest import API_KEY, make_client
from tests.conftest import image_bytes

AUTH = {"X-API-Key": API_KEY}

# JSON text as a client sends it (json.dumps writes NaN and Infinity, as many clients do)
BAD_ATTRIBUTES: dict[str, str] = {
    "NaN": '{"size": NaN}',
    "Infinity": '{"weight": Infinity}',
    "-Infinity in a list": '{"sizes": [38, -Infinity]}',
    "1e999 (infinite once read)": '{"weight": 1e999}',
    "NaN nested": '{"fit": {"waist": {"cm": NaN}}}',
    "too deep": json.dumps({"a": json.loads("[" * 20 + "]" * 20)}),
    "too many keys": json.dumps({f"k{i}": i for i in range(2000)}),
    "a huge text": json.dumps({"notes": "x" * 200_000}),
    "a huge key": json.dumps({"k" * 1000: 1}),
}


def _snapshot(client: TestClient) -> tuple[Any, Any]:
    products = client.get("/products", params={"limit": 200}).json()
    health = client.get("/health").json()
    return products, (health["products"], health["vectors"])


def _filtered_search_works(client: TestClient) -> None:
    """What a stored NaN broke on SQLite < 3.42: every attribute-filtered query."""
    photo = {"image": ("q.jpg", image_bytes(3), "image/jpeg")}
    r = client.post("/search", files=photo, data={"attributes": '{"colour": "red"}'})
    assert r.status_code == 200, r.text
    assert client.get("/search", params={"q": "SKU"}).status_code == 200


@pytest.fixture()
def big_client(tiny_encoder_path: Path, store_dir: Path):
    with make_client(tiny_encoder_path, store_dir, max_upload_bytes=10 * 1024 * 1024) as c:
        yield c


def _assert_422(r: Any, name: str, code: str | None = None) -> None:
    assert r.status_code == 422, f"{name}: {r.status_code} {r.text[:300]}"
    error = r.json()["error"]
    assert error["message"] and len(error["message"]) < 500, name
    if code is not None:
        assert error["code"] == code, name


def test_bad_attributes_are_422_on_every_write_route(big_client: TestClient) -> None:
    client = big_client
    before = _snapshot(client)
    for name, raw in BAD_ATTRIBUTES.items():
        _try_every_route(client, name, raw)
        assert _snapshot(client) == before, name
    _filtered_search_works(client)


def _try_every_route(client: TestClient, name: str, raw: str) -> None:
    sku = client.get("/products/1").json()["sku"]
    photo = {"image": ("n.jpg", image_bytes(100), "image/jpeg")}
    r = client.post("/index", files=photo, data={"sku": "NEW", "title": "t", "attributes": raw}, headers=AUTH)
    _assert_422(r, f"POST /index {name}", "invalid_attributes")

    fields = f'{{"sku": "{sku}", "title": "t", "attributes": {raw}}}'
    r = client.put("/products/1", content=fields, headers={**AUTH, "Content-Type": "application/json"})
    _assert_422(r, f"PUT {name}")

    r = client.patch(
        "/products/1",
        content=f'{{"attributes": {raw}}}',
        headers={**AUTH, "Content-Type": "application/json"},
    )
    _assert_422(r, f"PATCH {name}")

    manifest = f'[{{"sku": "B-1", "title": "t", "attributes": {raw}, "images": ["a.jpg"]}}]'
    r = client.post(
        "/index/batch",
        data={"manifest": manifest},
        files=[("image", ("a.jpg", image_bytes(101), "image/jpeg"))],
        headers=AUTH,
    )
    _assert_422(r, f"POST /index/batch {name}", "invalid_manifest")


def test_a_json_body_nested_past_the_parser_is_refused_and_changes_nothing(big_client: TestClient) -> None:
    client = big_client
    before = _snapshot(client)
    deep = '{"attributes": {"a": ' + "[" * 100_000 + "]" * 100_000 + "}}"
    r = client.patch("/products/1", content=deep, headers={**AUTH, "Content-Type": "application/json"})
    assert 400 <= r.status_code < 500, r.text[:300]
    assert _snapshot(client) == before


def test_good_attributes_still_go_in_and_come_back(client: TestClient) -> None:
    attributes = {"colour": "red", "size": 38, "price_eu": 19.5, "sale": True, "fit": {"waist": [70, 72]}}
    photo = {"image": ("n.jpg", image_bytes(100), "image/jpeg")}
    r = client.post(
        "/index",
        files=photo,
        data={"sku": "OK-1", "title": "t", "attributes": json.dumps(attributes)},
        headers=AUTH,
    )
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    assert client.get(f"/products/{pid}").json()["attributes"] == attributes
    r = client.patch(f"/products/{pid}", json={"attributes": {"colour": "blue"}}, headers=AUTH)
    assert r.status_code == 200 and r.json()["attributes"] == {"colour": "blue"}
