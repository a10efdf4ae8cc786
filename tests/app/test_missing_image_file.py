"""A photo whose file is gone from the store (deleted by hand, a lost disk) is a 404, not a 500."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from fastapi.testclient import TestClient

from index import ProductStore


def test_a_photo_whose_file_is_missing_is_404(client: TestClient, store_dir: Path) -> None:
    product = client.get("/products", params={"limit": 1}).json()[0]
    image_id = product["images"][0]["id"]
    assert client.get(f"/products/{product['id']}/image").status_code == 200
    with closing(sqlite3.connect(store_dir / ProductStore.DB_NAME)) as db:
        (rel,) = db.execute("SELECT path FROM images WHERE id = ?", (image_id,)).fetchone()
    (store_dir / rel).unlink()
    for url in (f"/products/{product['id']}/image", f"/products/{product['id']}/images/{image_id}"):
        r = client.get(url)
        assert r.status_code == 404, r.text
        assert r.json()["error"]["code"] == "image_file_missing"
        assert str(store_dir) not in r.text  # no server path in the answer
    assert client.get("/health").status_code == 200
