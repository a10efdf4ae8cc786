"""Local matching through the API: a shopper's photo of a printed cover comes back first as a
strong match with its inliers and confidence; photos added over HTTP join the local index; a store
without one never finds a query's local features."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from app.embedder import Embedder
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
    return build_store(catalog.parent, tiny_encoder_path, tmp_path / "store", "--rerank", "on")


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
            assert first["inliers"] >= 15
            assert first["match_confidence"] == pytest.approx(1 - 1 / first["inliers"])
            assert -1 <= first["score"] <= 1  # its cosine, as for every other result
            assert len(results) == 3
            assert all(r["match_confidence"] is None and r["match"] != "strong" for r in results[1:])
            assert all(r["inliers"] is None or r["inliers"] < 15 for r in results[1:])
            below = search(client, photo_of(wanted), k="3", min_score="0.9999")["results"]
            assert [r["sku"] for r in below] == [f"DVD-{wanted}"]  # verified: kept whatever its cosine
        plain = search(client, (ROOT / "demo/catalog/shoes/SHOES-004.jpg").read_bytes(), k="5")["results"]
        assert all(r["match"] != "strong" and (r["inliers"] or 0) < 15 for r in plain)
        assert all(r["match_confidence"] is None for r in plain)
        assert len({r["sku"] for r in plain}) == len(plain) == 5  # the merged order, each product once


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
    """Off for this server's searches; its writes still keep the store's local index whole."""
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
        assert set(store.local_features([image_id])) == {image_id} and image_id in store.local.image_ids()


def test_a_store_without_a_local_index_finds_no_query_features(
    tiny_encoder_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog = tmp_path / "catalog" / "shoes"
    catalog.mkdir(parents=True)
    for name in ("SHOES-001", "SHOES-002", "SHOES-004"):
        (catalog / f"{name}.jpg").write_bytes((ROOT / f"demo/catalog/shoes/{name}.jpg").read_bytes())
    store_dir = build_store(catalog.parent, tiny_encoder_path, tmp_path / "store")  # decides: off
    with ProductStore(store_dir) as store:
        assert not store.rerank_options.enabled and not store.local.ready and store.features.count() == 0

    async def refused(*_: object, **__: object) -> None:
        raise AssertionError("a store decided off found a query's local features")

    monkeypatch.setattr(Embedder, "local_features", refused)
    with make_client(tiny_encoder_path, store_dir) as client:
        results = search(client, (ROOT / "demo/catalog/shoes/SHOES-004.jpg").read_bytes(), k="3")["results"]
        assert results[0]["sku"] == "SHOES-004" and all(r["inliers"] is None for r in results)
