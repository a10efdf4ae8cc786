"""POST /search with the photo as the raw request body (Content-Type image/*, parameters in the
query string): the same answers, limits and errors as the multipart form."""

from __future__ import annotations

import io
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from tests.app.conftest import make_client
from tests.app.test_hostile import HOSTILE_IMAGES
from tests.conftest import image_bytes


def raw(client: TestClient, data: bytes, content_type: str = "image/jpeg", **params: object) -> Any:
    return client.post("/search", content=data, headers={"Content-Type": content_type}, params=params)


def form(client: TestClient, data: bytes, **fields: object) -> Any:
    return client.post(
        "/search", files={"image": ("p.jpg", data, "image/jpeg")}, data={k: str(v) for k, v in fields.items()}
    )


def results(response: Any) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    return response.json()["results"]


@pytest.fixture()
def big_client(tiny_encoder_path: Path, store_dir: Path) -> Iterator[TestClient]:
    with make_client(tiny_encoder_path, store_dir, max_upload_bytes=10 * 1024 * 1024) as client:
        yield client


def test_a_raw_photo_finds_what_the_form_finds(client: TestClient) -> None:
    photo = image_bytes(7)
    by_body = results(raw(client, photo, k=3))
    assert by_body == results(form(client, photo, k=3))
    assert len(by_body) == 3 and by_body[0]["sku"] == "SKU-07"
    category = by_body[0]["category"]
    filtered = results(raw(client, photo, k=5, category=category, min_score=0.5))
    assert filtered == results(form(client, photo, k=5, category=category, min_score=0.5))
    assert {r["category"] for r in filtered} == {category}


def test_png_and_webp_bodies(client: TestClient) -> None:
    picture = Image.open(io.BytesIO(image_bytes(4)))
    for fmt, kind in (("PNG", "image/png"), ("WEBP", "image/webp")):
        out = io.BytesIO()
        picture.save(out, fmt)
        assert results(raw(client, out.getvalue(), kind, k=1))[0]["sku"] == "SKU-04", fmt


def test_a_body_that_is_neither_a_form_nor_a_photo_type_is_415(client: TestClient) -> None:
    for kind in ("text/plain", "application/octet-stream", "image/gif", "application/json"):
        r = raw(client, image_bytes(1), kind)
        assert r.status_code == 415, kind
        assert (
            r.json()["error"]["code"] == "unsupported_media_type"
            and "image/jpeg" in r.json()["error"]["message"]
        )
    r = client.post("/search", content=image_bytes(1))  # no Content-Type at all
    assert r.status_code == 415


def test_query_parameters_are_validated_like_form_fields(client: TestClient) -> None:
    photo = image_bytes(1)
    for params, code in (
        ({"k": 0}, "invalid_request"),
        ({"k": "many"}, "invalid_request"),
        ({"min_score": 2}, "invalid_request"),
        ({"crop": "0.9,0.9,0.5,0.5"}, "invalid_crop"),
        ({"min_price": 5, "max_price": 1}, "invalid_filter"),
        ({"attributes": "[1]"}, "invalid_filter"),
    ):
        for r in (raw(client, photo, **params), form(client, photo, **params)):
            assert (r.status_code, r.json()["error"]["code"]) == (422, code), (params, r.text)
    # the parameters are checked before the photo is read: a bad k with an empty body is a 422
    assert raw(client, b"", k=0).status_code == 422
    assert raw(client, b"", k=1).json()["error"]["code"] == "empty_upload"


def test_an_oversized_raw_body_is_413(client: TestClient) -> None:
    over_upload_limit = b"\xff\xd8\xff" + bytes(310_000)  # over the client's 300 kB, under the body cap
    over_body_limit = b"\xff\xd8\xff" + bytes(2_000_000)
    for data in (over_upload_limit, over_body_limit):
        r = raw(client, data)
        assert (r.status_code, r.json()["error"]["code"]) == (413, "payload_too_large")

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        for _ in range(100):
            yield b"\0" * 50_000

    r = client.post("/search", content=chunks(), headers={"Content-Type": "image/jpeg"})
    assert r.status_code == 413


@pytest.mark.parametrize("name,data,status,code", HOSTILE_IMAGES, ids=[h[0] for h in HOSTILE_IMAGES])
def test_hostile_bytes_get_the_answers_of_the_form(
    big_client: TestClient, name: str, data: bytes, status: int, code: str
) -> None:
    for r in (raw(big_client, data), form(big_client, data)):
        assert (r.status_code, r.json()["error"]["code"]) == (status, code), name


def test_a_photo_over_one_mib_stays_in_memory(
    big_client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Starlette writes a form's file over 1 MiB to a temporary file; under the upload limit the
    search keeps it in memory (no disk write, no thread hop to read it back)."""
    noise = np.random.default_rng(0).integers(0, 256, (700, 700, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(noise).save(out, "PNG")
    photo = out.getvalue()
    assert len(photo) > 1024 * 1024
    made: list[object] = []
    real = tempfile.TemporaryFile

    def counting(*args: Any, **kwargs: Any) -> Any:
        made.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(tempfile, "TemporaryFile", counting)
    assert len(results(form(big_client, photo, k=2))) == 2
    assert made == []


def test_the_schema_documents_both_ways(client: TestClient) -> None:
    operation = client.get("/openapi.json").json()["paths"]["/search"]["post"]
    content = operation["requestBody"]["content"]
    assert set(content) == {"multipart/form-data", "image/jpeg", "image/png", "image/webp"}
    multipart = content["multipart/form-data"]["schema"]
    assert multipart["required"] == ["image"] and {"image", "k", "crop", "q"} <= set(multipart["properties"])
    assert multipart["properties"]["k"]["maximum"] == 100
    assert {p["name"] for p in operation["parameters"] if p["in"] == "query"} >= {
        "k",
        "category",
        "crop",
        "q",
    }
