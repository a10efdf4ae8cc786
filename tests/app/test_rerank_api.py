"""Geometric re-ranking through the API: a shopper's photo of a printed cover comes back first as a
strong match with its inliers; photos added over HTTP keep their local features."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from index import ProductStore
from tests.app.conftest import API_KEY, make_client
from tests.conftest import build_store
from tests.encoder.covers import DEMO_PHOTO, cover, jpeg, shopper_photo

ROOT = Path(__file__).resolve().parents[2]
HEADERS = {"X-API-Key": API_KEY}


@pytest.fixture()
def covers_dir(tiny_encoder_path: Path, tmp_path: Path) -> Path:
    catalog = tmp_path / "catalog" / "dvd"
    catalog.mkdir(parents=True)
    for i in range(5):
        (catalog / f"DVD-{i}.jpg").write_bytes(jpeg(cover(i)))
    return build_store(catalog.parent, tiny_encoder_path, tmp_path / "store")


def photo_of(i: int) -> bytes:
    return jpeg(shopper_photo(cover(i), Image.open(ROOT / DEMO_PHOTO), seed=i), quality=80)


def search(client, data: bytes, **form: str) -> dict:  # type: ignore[no-untyped-def]
    response = client.post("/search", files={"image": ("p.jpg", data, "image/jpeg")}, data=form)
    assert response.status_code == 200, response.text
    return response.json()


def test_a_verified_match_is_first_and_strong(tiny_encoder_path: Path, covers_dir: Path) -> None:
    with make_client(tiny_encoder_path, covers_dir) as client:
        for wanted in (1, 3):
            results = search(client, photo_of(wanted), k="3")["results"]
            first = results[0]
            assert first["sku"] == f"DVD-{wanted}" and first["match"] == "strong"
            assert first["inliers"] >= 15 and first["score"] >= 1 - 1 / first["inliers"] - 1e-6
            assert len(results) == 3 and all(r["inliers"] is not None for r in results)
            assert all(r["inliers"] < 15 and r["score"] < first["score"] for r in results[1:])
        plain = search(client, (ROOT / "demo/catalog/shoes/SHOES-004.jpg").read_bytes(), k="5")["results"]
        assert all(r["match"] != "strong" and r["inliers"] < 15 for r in plain)
        assert [r["score"] for r in plain] == sorted((r["score"] for r in plain), reverse=True)


def test_photos_added_over_http_keep_their_features(tiny_encoder_path: Path, covers_dir: Path) -> None:
    with make_client(tiny_encoder_path, covers_dir) as client:
        added = client.post(
            "/index",
            headers=HEADERS,
            files={"image": ("a.jpg", jpeg(cover(7)), "image/jpeg")},
            data={"sku": "DVD-7", "title": "Cover 7"},
        )
        assert added.status_code == 201, added.text
        product_id = added.json()["id"]
        more = client.post(
            f"/products/{product_id}/images",
            headers=HEADERS,
            files={"image": ("b.jpg", jpeg(cover(8)), "image/jpeg")},
        )
        assert more.status_code == 200, more.text
        first = search(client, photo_of(7), k="1")["results"][0]
        image_ids = [i["id"] for i in more.json()["images"]]
        assert first["sku"] == "DVD-7" and first["match"] == "strong"
        assert first["matched_image_id"] == image_ids[0]  # the photo of cover 7, not of cover 8
    with ProductStore(covers_dir) as store:
        assert set(store.local_features(image_ids)) == set(image_ids)
        assert store.features.count() == store.image_count() == 7


def test_a_server_may_turn_it_off(tiny_encoder_path: Path, covers_dir: Path) -> None:
    with make_client(tiny_encoder_path, covers_dir, rerank="off") as client:
        results = search(client, photo_of(2), k="5")["results"]
        assert all(r["inliers"] is None for r in results)
        added = client.post(
            "/index",
            headers=HEADERS,
            files={"image": ("a.jpg", jpeg(cover(9)), "image/jpeg")},
            data={"sku": "DVD-9", "title": "Cover 9"},
        )
        assert added.status_code == 201
        image_id = added.json()["images"][0]["id"]
    with ProductStore(covers_dir) as store:
        assert store.local_features([image_id]) == {}
