"""Each product field has the same limits wherever a client writes it: the form of POST /index,
the manifest of POST /index/batch, and the JSON of PUT and PATCH /products/{id}."""

from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient

from encoder.attributes import MAX_DEPTH
from tests.app.conftest import API_KEY
from tests.conftest import image_bytes

AUTH = {"X-API-Key": API_KEY}


def nested(depth: int) -> dict[str, Any]:
    """An object ``depth`` levels deep ({} is one)."""
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"k": value}
    return value


AT_THE_LIMIT = {
    "sku": "s" * 128,
    "title": "t" * 500,
    "category": "c" * 200,
    "price": 1e9,
    "attributes": nested(MAX_DEPTH),
}
PAST_IT = [
    {"sku": ""},
    {"sku": "s" * 129},
    {"title": ""},
    {"title": "t" * 501},
    {"category": "c" * 201},
    {"price": -0.01},
    {"price": 1.01e9},
    {"attributes": nested(MAX_DEPTH + 1)},
]


def test_every_way_of_writing_a_product_refuses_the_same_values(client: TestClient) -> None:
    pid = client.get("/products", params={"limit": 1}).json()[0]["id"]
    photo = ("0.png", image_bytes(0, "PNG"), "image/png")
    for bad in PAST_IT:
        fields = {"sku": "OK", "title": "ok", **bad}
        form = {k: json.dumps(v) if k == "attributes" else str(v) for k, v in fields.items()}
        manifest = json.dumps([{**fields, "images": ["0.png"]}])
        answers = {
            "form": client.post("/index", data=form, files=[("image", photo)], headers=AUTH),
            "batch": client.post(
                "/index/batch", data={"manifest": manifest}, files=[("image", photo)], headers=AUTH
            ),
            "put": client.put(f"/products/{pid}", json=fields, headers=AUTH),
            "patch": client.patch(f"/products/{pid}", json=bad, headers=AUTH),
        }
        assert {way: r.status_code for way, r in answers.items()} == dict.fromkeys(answers, 422), bad
    assert client.get("/health").json()["products"] == 12

    r = client.patch(f"/products/{pid}", json=AT_THE_LIMIT, headers=AUTH)
    assert r.status_code == 200, r.text
    assert {k: r.json()[k] for k in AT_THE_LIMIT} == AT_THE_LIMIT
