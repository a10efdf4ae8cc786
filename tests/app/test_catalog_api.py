"""The catalog endpoints beyond add/delete: several photos, metadata updates, near-duplicates, filters."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from tests.app.conftest import API_KEY, make_client
from tests.conftest import image_bytes

AUTH = {"X-API-Key": API_KEY}


def photos(*seeds: int) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("image", (f"{s}.png", image_bytes(s, "PNG"), "image/png")) for s in seeds]


def search(client: TestClient, seed: int, **form: object) -> list[dict]:
    r = client.post("/search", files=photos(seed), data={k: str(v) for k, v in form.items()})
    assert r.status_code == 200, r.text
    return r.json()["results"]


def add(client: TestClient, sku: str, *seeds: int, **form: object):
    fields = {"sku": sku, "title": f"Product {sku}", **{k: str(v) for k, v in form.items()}}
    return client.post("/index", files=photos(*seeds), data=fields, headers=AUTH)


def test_a_product_with_several_photos_is_found_by_each(client: TestClient) -> None:
    r = add(client, "MULTI", 501, 502, 503)
    assert r.status_code == 201, r.text
    body = r.json()
    assert len(body["images"]) == 3 and body["near_duplicates"] == []
    for image, seed in zip(body["images"], (501, 502, 503), strict=True):
        top = search(client, seed, k=1)[0]
        assert top["sku"] == "MULTI" and top["matched_image_id"] == image["id"]
        assert client.get(image["url"]).content == image_bytes(seed, "PNG")


def test_images_can_be_added_replaced_and_removed(client: TestClient) -> None:
    product = add(client, "P", 601).json()
    pid = product["id"]
    r = client.post(f"/products/{pid}/images", files=photos(602), headers=AUTH)
    assert r.status_code == 200 and len(r.json()["images"]) == 2
    assert search(client, 602, k=1)[0]["sku"] == "P"

    r = client.put(f"/products/{pid}/images", files=photos(603, 604), headers=AUTH)
    assert r.status_code == 200, r.text
    images = r.json()["images"]
    assert len(images) == 2
    assert all(
        hit["sku"] != "P" or hit["matched_image_id"] in {i["id"] for i in images}
        for hit in search(client, 601, k=20)
    )

    r = client.delete(f"/products/{pid}/images/{images[0]['id']}", headers=AUTH)
    assert r.status_code == 200 and [i["id"] for i in r.json()["images"]] == [images[1]["id"]]
    r = client.delete(f"/products/{pid}/images/{images[1]['id']}", headers=AUTH)
    assert r.status_code == 409 and r.json()["error"]["code"] == "last_image"
    assert client.delete(f"/products/{pid}/images/999999", headers=AUTH).status_code == 404
    assert client.post("/products/999999/images", files=photos(605), headers=AUTH).status_code == 404
    assert client.post(f"/products/{pid}/images", files=photos(605)).status_code == 401


def test_metadata_updates(client: TestClient) -> None:
    pid = add(client, "U", 701, category="red", price=5).json()["id"]
    r = client.patch(
        f"/products/{pid}", json={"title": "Renamed", "price": 7.5, "attributes": {"size": "M"}}, headers=AUTH
    )
    assert r.status_code == 200, r.text
    got = r.json()
    assert (got["title"], got["price"], got["attributes"], got["category"]) == (
        "Renamed",
        7.5,
        {"size": "M"},
        "red",
    )
    assert search(client, 701, k=1)[0]["title"] == "Renamed"

    assert client.patch(f"/products/{pid}", json={"sku": "SKU-01"}, headers=AUTH).status_code == 409
    for bad in ({"colour": "red"}, {"price": -1}, {"title": None}, {"title": ""}):
        r = client.patch(f"/products/{pid}", json=bad, headers=AUTH)
        assert r.status_code == 422, bad
    assert client.patch("/products/999999", json={"title": "x"}, headers=AUTH).status_code == 404
    assert client.get(f"/products/{pid}").json()["title"] == "Renamed"


def test_search_filters(client: TestClient) -> None:
    add(client, "CHEAP", 801, category="sale", price=3, attributes='{"colour": "red", "size": 40}')
    add(client, "DEAR", 802, category="sale", price=300, attributes='{"colour": "blue", "size": 40}')
    assert {h["sku"] for h in search(client, 801, k=10, category="sale")} == {"CHEAP", "DEAR"}
    assert [h["sku"] for h in search(client, 802, k=10, category="sale", max_price=10)] == ["CHEAP"]
    assert [h["sku"] for h in search(client, 801, k=10, min_price=100)] == ["DEAR"]
    assert [h["sku"] for h in search(client, 801, k=10, attributes='{"colour": "blue"}')] == ["DEAR"]
    assert search(client, 801, k=10, attributes='{"size": 40, "colour": "green"}') == []
    for bad in ({"attributes": "[1]"}, {"attributes": "{not json"}, {"min_price": 5, "max_price": 1}):
        r = client.post("/search", files=photos(801), data={k: str(v) for k, v in bad.items()})
        assert r.status_code == 422 and r.json()["error"]["code"] in {"invalid_filter", "invalid_request"}


def test_near_duplicates_are_reported_or_refused(tiny_encoder_path: Path, store_dir: Path) -> None:
    with make_client(tiny_encoder_path, store_dir) as client:  # policy: report
        r = add(client, "AGAIN", 7)  # the same photo as SKU-07
        assert r.status_code == 201
        dup = r.json()["near_duplicates"]
        assert dup and dup[0]["other_sku"] == "SKU-07" and dup[0]["score"] >= 0.99  # PNG of the catalog JPEG
    with make_client(tiny_encoder_path, store_dir, duplicate_policy="refuse") as client:
        before = client.get("/health").json()["products"]
        r = add(client, "AGAIN-2", 7)
        assert r.status_code == 409
        error = r.json()["error"]
        assert error["code"] == "near_duplicate" and error["details"][0]["other_sku"] in {"SKU-07", "AGAIN"}
        assert client.get("/health").json()["products"] == before


def test_more_like_this_uses_the_stored_photos(client: TestClient) -> None:
    pid = add(client, "LIKE", 901).json()["id"]
    r = client.get(f"/products/{pid}/similar", params={"k": 5})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert len(results) == 5 and all(h["product_id"] != pid for h in results)
    scores = [h["score"] for h in results]
    assert scores == sorted(scores, reverse=True)
    # the same as searching with the product's own photo, minus the product itself
    by_photo = [h["product_id"] for h in search(client, 901, k=6) if h["product_id"] != pid][:5]
    assert [h["product_id"] for h in results] == by_photo
    only_green = client.get(f"/products/{pid}/similar", params={"category": "green"}).json()["results"]
    assert only_green and {h["category"] for h in only_green} == {"green"}
    assert client.get("/products/999999/similar").status_code == 404
    assert client.get(f"/products/{pid}/similar", params={"k": 0}).status_code == 422


def test_min_score_leaves_out_weak_results(client: TestClient) -> None:
    everything = search(client, 7, k=12)
    cut = everything[3]["score"]
    kept = search(client, 7, k=12, min_score=cut)
    assert kept == [h for h in everything if h["score"] >= cut] and len(kept) >= 4
    r = client.post("/search", files=photos(7), data={"min_score": "2"})
    assert r.status_code == 422


def _side_by_side(left: int, right: int) -> bytes:
    """One photo holding two catalog pictures next to each other (a shop window with two products)."""
    import io

    from PIL import Image

    a = Image.open(io.BytesIO(image_bytes(left)))
    b = Image.open(io.BytesIO(image_bytes(right))).resize(a.size)
    both = Image.new("RGB", (2 * a.width, a.height))
    both.paste(a, (0, 0))
    both.paste(b, (a.width, 0))
    out = io.BytesIO()
    both.save(out, "PNG")
    return out.getvalue()


def test_crop_searches_the_marked_region(client: TestClient) -> None:
    photo = _side_by_side(3, 9)

    def top(crop: str) -> str:
        r = client.post(
            "/search", files={"image": ("w.png", photo, "image/png")}, data={"crop": crop, "k": "1"}
        )
        assert r.status_code == 200, r.text
        return r.json()["results"][0]["sku"]

    assert top("0,0,0.5,1") == "SKU-03"
    assert top("0.5,0,0.5,1") == "SKU-09"
    for bad in ("0,0,1", "a,b,c,d", "0.5,0,0.6,1", "0,0,0,1", "-0.1,0,0.5,0.5"):
        r = client.post("/search", files={"image": ("w.png", photo, "image/png")}, data={"crop": bad})
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_crop", bad


def test_text_search_and_photo_plus_words(client: TestClient) -> None:
    add(client, "WORDS", 950, category="sale", price=2, attributes='{"material": "linen"}')
    r = client.get("/search", params={"q": "linen"})
    assert r.status_code == 200 and r.json()["ranking"] == "text"
    results = r.json()["results"]
    assert [h["sku"] for h in results] == ["WORDS"] and results[0]["matched_image_id"] is None
    assert client.get(results[0]["image_url"]).status_code == 200
    assert client.get("/search", params={"q": "linen", "category": "other"}).json()["results"] == []
    assert client.get("/search", params={"q": ""}).status_code == 422

    # the photo of SKU-05 plus a word only WORDS has: both rankings count
    r = client.post("/search", files=photos(5), data={"q": "linen", "k": "3"})
    body = r.json()
    assert r.status_code == 200 and body["ranking"] == "fused"
    top_two = [h["sku"] for h in body["results"][:2]]
    assert set(top_two) == {"SKU-05", "WORDS"}
    image_only = [h["sku"] for h in search(client, 5, k=3)]
    assert image_only[0] == "SKU-05" and "WORDS" not in image_only[:2]


def test_put_replaces_all_metadata(client: TestClient) -> None:
    pid = add(client, "FULL", 961, category="red", price=5, attributes='{"size": "M"}').json()["id"]
    r = client.put(f"/products/{pid}", json={"sku": "FULL-2", "title": "Replaced"}, headers=AUTH)
    assert r.status_code == 200, r.text
    got = r.json()
    assert (got["sku"], got["title"], got["category"], got["price"], got["attributes"]) == (
        "FULL-2",
        "Replaced",
        None,
        None,
        {},
    )
    assert len(got["images"]) == 1
    assert client.put(f"/products/{pid}", json={"title": "no sku"}, headers=AUTH).status_code == 422
    assert client.put("/products/999999", json={"sku": "X", "title": "Y"}, headers=AUTH).status_code == 404
    assert (
        client.put(f"/products/{pid}", json={"sku": "SKU-01", "title": "t"}, headers=AUTH).status_code == 409
    )
    assert client.put(f"/products/{pid}", json={"sku": "Z", "title": "t"}).status_code == 401


def _batch(client: TestClient, manifest: object, files: list, headers=AUTH):
    import json as _json

    return client.post(
        "/index/batch",
        data={"manifest": manifest if isinstance(manifest, str) else _json.dumps(manifest)},
        files=files,
        headers=headers,
    )


def _file(name: str, seed: int) -> tuple[str, tuple[str, bytes, str]]:
    return ("image", (name, image_bytes(seed, "PNG"), "image/png"))


def test_batch_adds_all_products_in_one_go(client: TestClient) -> None:
    manifest = [
        {"sku": "B-1", "title": "One", "category": "batch", "price": 1, "images": ["a.png", "b.png"]},
        {"sku": "B-2", "title": "Two", "attributes": {"colour": "teal"}, "images": ["c.png"]},
    ]
    r = _batch(client, manifest, [_file("a.png", 1001), _file("b.png", 1002), _file("c.png", 1003)])
    assert r.status_code == 201, r.text
    products = r.json()["products"]
    assert [p["sku"] for p in products] == ["B-1", "B-2"] and len(products[0]["images"]) == 2
    assert search(client, 1002, k=1)[0]["sku"] == "B-1"
    assert client.get("/search", params={"q": "teal"}).json()["results"][0]["sku"] == "B-2"


def test_a_bad_batch_adds_nothing(client: TestClient) -> None:
    before = client.get("/health").json()["products"]
    one = [{"sku": "N-1", "title": "t", "images": ["a.png"]}]
    cases = [
        (_batch(client, "not json", [_file("a.png", 1)]), 422, "invalid_manifest"),
        (_batch(client, [{"sku": "N-1", "images": ["a.png"]}], [_file("a.png", 1)]), 422, "invalid_manifest"),
        (_batch(client, one, [_file("b.png", 1)]), 422, "invalid_manifest"),
        (_batch(client, one, [_file("a.png", 1), _file("z.png", 2)]), 422, "invalid_manifest"),
        (
            _batch(client, [*one, {"sku": "SKU-01", "title": "t", "images": ["a.png"]}], [_file("a.png", 1)]),
            409,
            "duplicate_sku",
        ),
        (_batch(client, [*one, *one], [_file("a.png", 1)]), 409, "duplicate_sku"),
        (
            _batch(client, one, [("image", ("a.png", b"not an image", "image/png"))]),
            415,
            "unsupported_media_type",
        ),
        (_batch(client, one, [_file("a.png", 1)], headers={}), 401, "missing_api_key"),
    ]
    for r, status, code in cases:
        assert (r.status_code, r.json()["error"]["code"]) == (status, code), r.text
    assert client.get("/health").json()["products"] == before


def test_results_carry_a_match_label_once_the_store_is_calibrated(
    tiny_encoder_path: Path, store_dir: Path
) -> None:
    from index import ProductStore
    from index.thresholds import META_KEY, load

    with ProductStore(store_dir) as store:  # `lookalike build` calibrated it
        thresholds = load(store)
        assert thresholds is not None
    with make_client(tiny_encoder_path, store_dir) as client:
        results = search(client, 7, k=12)
        assert [h["match"] for h in results] == [thresholds.label(h["score"]) for h in results]
        assert results[0]["match"] in {"strong", "weak"}
        assert client.get("/search", params={"q": "SKU"}).json()["results"][0]["match"] is None
    with ProductStore(store_dir) as store:
        store.repository.delete_meta(META_KEY)
    with make_client(tiny_encoder_path, store_dir) as client:  # uncalibrated: no label
        assert {h["match"] for h in search(client, 7, k=5)} == {None}
