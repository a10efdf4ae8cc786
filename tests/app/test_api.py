from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.app.conftest import API_KEY, make_client
from tests.conftest import image_bytes

AUTH = {"X-API-Key": API_KEY}


def search(client: TestClient, data: bytes, **form: object):
    return client.post(
        "/search",
        files={"image": ("photo.jpg", data, "image/jpeg")},
        data={k: str(v) for k, v in form.items()},
    )


def add(client: TestClient, data: bytes, headers=AUTH, **form: object):
    fields = {"sku": "NEW-1", "title": "A new product", "category": "red", "price": "12.5", **form}
    return client.post("/index", files={"image": ("x.jpg", data, "image/jpeg")}, data=fields, headers=headers)


def test_search_finds_the_catalog_photo_itself(client: TestClient) -> None:
    r = search(client, image_bytes(7), k=3)
    assert r.status_code == 200
    body = r.json()
    assert len(body["results"]) == 3 and body["took_ms"] >= 0
    top = body["results"][0]
    assert (
        top["sku"] == "SKU-07" and top["category"] == "green" and top["score"] == pytest.approx(1.0, abs=1e-4)
    )
    assert set(top) >= {"product_id", "sku", "title", "category", "price", "score", "image_url"}
    image = client.get(top["image_url"])
    assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"
    assert image.content == image_bytes(7)


def test_search_default_k_and_range(client: TestClient) -> None:
    assert len(search(client, image_bytes(1)).json()["results"]) == 10
    for bad in (0, 101, "many"):
        r = search(client, image_bytes(1), k=bad)
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"


@pytest.mark.parametrize(
    "data,status,code",
    [
        (b"", 400, "empty_upload"),
        (b"just some text, named photo.jpg", 415, "unsupported_media_type"),
        (image_bytes(3)[:300], 422, "invalid_image"),
        (b"\xff\xd8\xff" + bytes(310_000), 413, "payload_too_large"),  # over the 300 kB upload limit
    ],
)
def test_hostile_uploads_get_clear_errors(client: TestClient, data: bytes, status: int, code: str) -> None:
    r = search(client, data)
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code and r.json()["error"]["message"]


def test_pixel_limit_and_wrong_field(tiny_encoder_path: Path, store_dir: Path) -> None:
    with make_client(tiny_encoder_path, store_dir, max_image_pixels=5000) as client:
        r = search(client, image_bytes(1))
        assert r.status_code == 413 and r.json()["error"]["code"] == "image_too_large"
        r = client.post("/search", files={"photo": ("a.jpg", image_bytes(1), "image/jpeg")})
        assert r.status_code == 422 and "image" in r.json()["error"]["message"]


def test_index_then_search_get_and_delete(client: TestClient) -> None:
    r = add(client, image_bytes(100), attributes='{"colour": "red"}')
    assert r.status_code == 201, r.text
    product = r.json()
    assert (
        product["sku"] == "NEW-1" and product["price"] == 12.5 and product["attributes"] == {"colour": "red"}
    )
    assert search(client, image_bytes(100), k=1).json()["results"][0]["sku"] == "NEW-1"
    assert client.get(f"/products/{product['id']}").json()["title"] == "A new product"
    assert client.get("/health").json()["products"] == 13

    assert client.delete(f"/products/{product['id']}").status_code == 401
    assert client.delete(f"/products/{product['id']}", headers=AUTH).status_code == 204
    assert client.get(f"/products/{product['id']}").status_code == 404
    assert client.delete(f"/products/{product['id']}", headers=AUTH).status_code == 404
    assert search(client, image_bytes(100), k=1).json()["results"][0]["sku"] != "NEW-1"


def test_index_auth_and_conflicts_change_nothing(client: TestClient) -> None:
    r = add(client, image_bytes(100), headers={})
    assert r.status_code == 401 and r.json()["error"]["code"] == "missing_api_key"
    r = add(client, image_bytes(100), headers={"X-API-Key": "wrong"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "invalid_api_key"
    r = add(client, image_bytes(100), sku="SKU-01")
    assert r.status_code == 409 and r.json()["error"]["code"] == "duplicate_sku"
    assert add(client, b"not an image").status_code == 415
    assert add(client, image_bytes(100), price="-3").status_code == 422
    assert add(client, image_bytes(100), attributes="[1, 2]").status_code == 422
    assert add(client, image_bytes(100), attributes="{oops").status_code == 422
    assert client.get("/health").json()["products"] == 12


def test_writes_disabled_without_configured_keys(tiny_encoder_path: Path, store_dir: Path) -> None:
    with make_client(tiny_encoder_path, store_dir, api_keys="") as client:
        r = add(client, image_bytes(100))
        assert r.status_code == 403
        assert "LOOKALIKE_API_KEYS" in r.json()["error"]["message"]


def test_unknown_ids_are_404(client: TestClient) -> None:
    for url in ("/products/9999", "/products/9999/image", "/products/1/images/9999"):
        r = client.get(url)
        assert r.status_code == 404 and r.json()["error"]["code"] in {"product_not_found", "image_not_found"}
    assert client.get("/products/abc").status_code == 422


def test_health_lists_and_storefront(client: TestClient) -> None:
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["device"] == "cpu" and health["products"] == 12
    assert health["encoder"]["arch"] == "mobilenet_v3_small" and len(health["encoder"]["fingerprint"]) == 64
    page = client.get("/")
    assert page.status_code == 200 and "Search by photo" in page.text
    admin = client.get("/admin")
    assert admin.status_code == 200 and "API key" in admin.text
    for asset in ("js/storefront.js", "js/admin.js", "js/api.js", "style.css"):
        assert client.get(f"/static/{asset}").status_code == 200, asset
    listed = client.get("/products", params={"category": "red", "limit": 2}).json()
    assert len(listed) == 2 and all(p["category"] == "red" for p in listed)


def test_categories_count_products(client: TestClient) -> None:
    assert client.get("/categories").json() == [
        {"name": "blue", "products": 4},
        {"name": "green", "products": 4},
        {"name": "red", "products": 4},
    ]
    assert add(client, image_bytes(300), sku="NO-CAT", category="").status_code == 201
    assert add(client, image_bytes(301), sku="NEW-CAT", category="hats").status_code == 201
    names = {c["name"]: c["products"] for c in client.get("/categories").json()}
    assert names == {"blue": 4, "green": 4, "red": 4, "hats": 1}
    priced = client.get("/products", params={"min_price": 10, "max_price": 20}).json()
    assert {p["sku"] for p in priced} == {"NO-CAT", "NEW-CAT"}
    assert client.get("/products", params={"category": "hats", "max_price": 5}).json() == []
    assert client.get("/products", params={"min_price": 9, "max_price": 1}).status_code == 422
    assert "/search" in client.get("/openapi.json").json()["paths"]


def test_added_products_survive_a_restart(tiny_encoder_path: Path, store_dir: Path) -> None:
    with make_client(tiny_encoder_path, store_dir) as client:
        assert add(client, image_bytes(200), sku="KEEP").status_code == 201
    with make_client(tiny_encoder_path, store_dir) as client:
        assert search(client, image_bytes(200), k=1).json()["results"][0]["sku"] == "KEEP"
