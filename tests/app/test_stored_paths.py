"""Image paths read from the store's rows are data, never followed out of the store.

A database edited by hand (or by anyone who can write it) points an image row at a file outside
the store: serving that product's photo must not read it, deleting the product must not delete
it, and with PostgreSQL, fetching the photo into the cache must not write there.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient

from tests.app.conftest import API_KEY, make_client
from tests.conftest import build_store

KEY = {"X-API-Key": API_KEY}
SECRET = b"\xff\xd8\xff SENTINEL: a file outside the store that must not be read or deleted"


def _first_product(client: TestClient) -> tuple[int, int]:
    product = client.get("/products", params={"limit": 1}).json()[0]
    return product["id"], product["images"][0]["id"]


def _relative(store_dir: Path, sentinel: Path) -> str:
    return os.path.relpath(sentinel, store_dir)  # ../outside/secret.jpg


def _inside_then_out(store_dir: Path, sentinel: Path) -> str:
    return f"images/ab/../../{_relative(store_dir, sentinel)}"


def _absolute(_: Path, sentinel: Path) -> str:
    return str(sentinel)


def _planted_symlink(store_dir: Path, sentinel: Path) -> str:
    """The row keeps its own well-formed path, but the file there became a symlink out."""
    with sqlite3.connect(store_dir / "catalog.sqlite3") as db:
        rel = db.execute("SELECT path FROM images ORDER BY id LIMIT 1").fetchone()[0]
    (store_dir / rel).unlink()
    (store_dir / rel).symlink_to(sentinel)
    return str(rel)


TAMPERED: list[Callable[[Path, Path], str]] = [_relative, _inside_then_out, _absolute, _planted_symlink]


@pytest.mark.parametrize("tamper", TAMPERED, ids=[t.__name__.strip("_") for t in TAMPERED])
def test_a_tampered_image_row_is_never_followed(
    tiny_encoder_path: Path, store_dir: Path, tmp_path: Path, tamper: Callable[[Path, Path], str]
) -> None:
    sentinel = tmp_path / "outside" / "secret.jpg"
    sentinel.parent.mkdir()
    sentinel.write_bytes(SECRET)
    with make_client(tiny_encoder_path, store_dir) as client:
        product_id, image_id = _first_product(client)
        path = tamper(store_dir, sentinel)
        with sqlite3.connect(store_dir / "catalog.sqlite3") as db:
            db.execute("UPDATE images SET path = ? WHERE id = ?", (path, image_id))
        for url in (f"/products/{product_id}/image", f"/products/{product_id}/images/{image_id}"):
            r = client.get(url)
            assert r.status_code == 500 and r.json()["error"]["code"] == "damaged_store", r.text
            assert b"SENTINEL" not in r.content and "secret" not in r.text and str(tmp_path) not in r.text
        other = client.get("/products", params={"limit": 2}).json()[1]["id"]
        assert client.get(f"/products/{other}/image").status_code == 200  # the rest is served
        assert client.delete(f"/products/{product_id}", headers=KEY).status_code == 204
        assert client.get(f"/products/{product_id}").status_code == 404
    assert sentinel.read_bytes() == SECRET  # neither deleted nor changed


def test_with_postgresql_a_tampered_row_writes_no_file_outside_the_cache(
    tiny_encoder_path: Path, photo_folder: Path, database_url: str, tmp_path: Path
) -> None:
    """With PostgreSQL the bytes are in the database and the store directory caches them: a
    row naming a path outside would otherwise be written there on the first read."""
    build_store(photo_folder, tiny_encoder_path, tmp_path / "build", "--database-url", database_url)
    planted = tmp_path / "outside" / "planted.jpg"
    planted.parent.mkdir()
    cache = tmp_path / "cache"
    with make_client(tiny_encoder_path, cache, database_url=database_url) as client:
        product_id, image_id = _first_product(client)
        bad = os.path.relpath(planted, cache)
        with psycopg.connect(database_url, autocommit=True) as db:
            db.execute("INSERT INTO image_bytes (path, data) VALUES (%s, %s)", (bad, SECRET))
            db.execute("UPDATE images SET path = %s WHERE id = %s", (bad, image_id))
        r = client.get(f"/products/{product_id}/images/{image_id}")
        assert r.status_code == 500 and r.json()["error"]["code"] == "damaged_store", r.text
        assert client.delete(f"/products/{product_id}", headers=KEY).status_code == 204
    assert not planted.exists() and not any(planted.parent.iterdir())
