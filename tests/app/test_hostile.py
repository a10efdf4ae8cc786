"""Hostile and broken requests: each is a 4xx with a message, and nothing stored changes."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.app.conftest import API_KEY, make_client
from tests.conftest import image_bytes

AUTH = {"X-API-Key": API_KEY}


def png_bomb(width: int = 30_000, height: int = 30_000) -> bytes:
    """A valid little PNG file that declares 900 megapixels (a decompression bomb)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = zlib.compress(b"\x00" * (3 * 64 + 1) * 64)  # a token of the pixel data
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


def truncated_jpeg() -> bytes:
    data = image_bytes(5)
    return data[: len(data) // 2]


HOSTILE_IMAGES = [
    ("truncated JPEG", truncated_jpeg(), 422, "invalid_image"),
    ("PNG decompression bomb", png_bomb(), 413, "image_too_large"),
    ("text named .jpg", b"GET / HTTP/1.1\r\n" * 20, 415, "unsupported_media_type"),
    ("zero bytes", b"", 400, "empty_upload"),
    ("50 MB body", b"\xff\xd8\xff" + bytes(50 * 1024 * 1024), 413, "payload_too_large"),
]


def state(client: TestClient, store_dir: Path) -> tuple[int, int, int]:
    health = client.get("/health").json()
    files = sum(1 for p in (store_dir / "images").rglob("*") if p.is_file())
    return health["products"], health["vectors"], files


@pytest.fixture()
def real_limits_client(tiny_encoder_path: Path, store_dir: Path):
    with make_client(tiny_encoder_path, store_dir, max_upload_bytes=10 * 1024 * 1024) as client:
        yield client


@pytest.mark.parametrize("name,data,status,code", HOSTILE_IMAGES, ids=[h[0] for h in HOSTILE_IMAGES])
def test_hostile_photos_on_every_upload_route(
    real_limits_client: TestClient, store_dir: Path, name: str, data: bytes, status: int, code: str
) -> None:
    client = real_limits_client
    before = state(client, store_dir)
    upload = {"image": ("photo.jpg", data, "image/jpeg")}
    answers = [
        client.post("/search", files=upload),
        client.post("/index", files=upload, data={"sku": "H-1", "title": "hostile"}, headers=AUTH),
        client.post("/products/1/images", files=upload, headers=AUTH),
        client.put("/products/1/images", files=upload, headers=AUTH),
    ]
    for r in answers:
        assert (r.status_code, r.json()["error"]["code"]) == (status, code), (
            f"{name}: {r.request.url} {r.text}"
        )
        assert r.json()["error"]["message"]
    assert state(client, store_dir) == before, name


def test_wrong_fields_and_out_of_range_values(client: TestClient, store_dir: Path) -> None:
    before = state(client, store_dir)
    photo = {"image": ("p.jpg", image_bytes(1), "image/jpeg")}
    cases = [
        client.post("/search", files={"photo": ("p.jpg", image_bytes(1), "image/jpeg")}),
        client.post("/search", files=photo, data={"k": "0"}),
        client.post("/search", files=photo, data={"k": "1000000"}),
        client.post("/search", files=photo, data={"crop": "0.9,0.9,0.5,0.5"}),
        client.post("/search", files=photo, data={"min_price": "-1"}),
        client.post("/index", files=photo, data={"title": "no sku"}, headers=AUTH),
        client.post("/index", files=photo, data={"sku": "x" * 500, "title": "t"}, headers=AUTH),
        client.get("/products/1/similar", params={"k": 1_000_000}),
        client.get("/search", params={"q": "x" * 1000}),
        client.patch("/products/1", json={"price": "free"}, headers=AUTH),
        client.post("/index/batch", data={"manifest": "[]"}, files=photo, headers=AUTH),
    ]
    for r in cases:
        assert r.status_code == 422, f"{r.request.method} {r.request.url}: {r.status_code} {r.text}"
        assert r.json()["error"]["message"]
    for r in (
        client.get("/products/123456"),
        client.get("/products/123456/similar"),
        client.patch("/products/123456", json={"title": "t"}, headers=AUTH),
        client.delete("/products/123456", headers=AUTH),
        client.delete("/products/1/images/123456", headers=AUTH),
        client.post("/products/123456/images", files=photo, headers=AUTH),
    ):
        assert r.status_code == 404, f"{r.request.method} {r.request.url}: {r.text}"
    assert state(client, store_dir) == before


def test_every_error_has_the_one_shape(tiny_encoder_path: Path, store_dir: Path) -> None:
    with make_client(tiny_encoder_path, store_dir) as client:
        for r in (client.get("/nowhere"), client.post("/health"), client.get("/products/x")):
            assert set(r.json()) == {"error"} and {"code", "message"} <= set(r.json()["error"])
