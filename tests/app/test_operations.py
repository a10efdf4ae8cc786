"""Operational behaviour: readiness, request ids, CORS, structured logs."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.logs import JsonFormatter
from app.request_id import current_request_id
from tests.app.conftest import make_client
from tests.conftest import image_bytes


def test_ready_only_while_loaded(tiny_encoder_path: Path, store_dir: Path) -> None:
    client = make_client(tiny_encoder_path, store_dir)
    r = client.get("/ready")  # the lifespan has not run: nothing is loaded
    assert r.status_code == 503 and r.json()["error"]["code"] == "not_ready"
    with client:
        assert client.get("/ready").json() == {"status": "ready"}


def test_every_answer_carries_a_request_id(client: TestClient) -> None:
    made = client.get("/health").headers["x-request-id"]
    assert len(made) == 32
    assert client.get("/health", headers={"X-Request-ID": "abc-123"}).headers["x-request-id"] == "abc-123"
    hostile = client.get("/health", headers={"X-Request-ID": "a\\" + "b" * 300})
    assert hostile.headers["x-request-id"] != "a\\" + "b" * 300  # not echoed: a fresh one instead
    too_big = client.post(
        "/search", files={"image": ("x.jpg", b"\xff\xd8\xff" + bytes(900_000), "image/jpeg")}
    )
    assert too_big.status_code == 413 and too_big.headers["x-request-id"]
    assert client.get("/products/999999").headers["x-request-id"]


def test_cors_only_for_configured_origins(tiny_encoder_path: Path, store_dir: Path) -> None:
    with make_client(tiny_encoder_path, store_dir, cors_origins="https://shop.example") as client:
        ok = client.options(
            "/search",
            headers={"Origin": "https://shop.example", "Access-Control-Request-Method": "POST"},
        )
        assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == "https://shop.example"
        other = client.get("/health", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers
    with make_client(tiny_encoder_path, store_dir) as client:  # none configured: no CORS at all
        r = client.get("/health", headers={"Origin": "https://shop.example"})
        assert "access-control-allow-origin" not in r.headers


def test_json_log_lines_name_the_request() -> None:
    record = logging.LogRecord("lookalike", logging.INFO, __file__, 1, "searched %d", (3,), None)
    token = current_request_id.set("req-7")
    try:
        line = json.loads(JsonFormatter().format(record))
    finally:
        current_request_id.reset(token)
    assert line["message"] == "searched 3" and line["request_id"] == "req-7" and line["level"] == "info"
    assert "request_id" not in json.loads(JsonFormatter().format(record))


def test_metrics_count_requests_batches_and_the_catalog(client: TestClient) -> None:
    for seed in (1, 2, 3):
        client.post("/search", files={"image": ("p.jpg", image_bytes(seed), "image/jpeg")})
    client.get("/products/424242")
    text = client.get("/metrics").text
    assert 'lookalike_requests_total{method="POST",route="/search",status="200"} 3.0' in text
    assert 'lookalike_requests_total{method="GET",route="/products/{product_id}",status="404"} 1.0' in text
    assert 'lookalike_request_seconds_count{method="POST",route="/search"} 3.0' in text
    assert "lookalike_batch_size_count 3.0" in text
    assert "lookalike_catalog_products 12.0" in text and "lookalike_catalog_vectors 12.0" in text
    assert "lookalike_queue_depth 0.0" in text
    assert 'lookalike_encoder_info{arch="mobilenet_v3_small",fingerprint="' in text
    client.get("/no/such/page")
    assert 'route="unmatched",status="404"' in client.get("/metrics").text


def test_a_search_that_cannot_be_answered_in_time_is_503_with_retry_after(
    tiny_encoder_path: Path, store_dir: Path
) -> None:
    with make_client(tiny_encoder_path, store_dir, request_timeout_s=1e-6) as client:
        r = client.post("/search", files={"image": ("p.jpg", image_bytes(1), "image/jpeg")})
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        assert r.json()["error"]["code"] == "overloaded"
        assert client.get("/health").json()["products"] == 12  # nothing else is affected


def test_insecure_dev_mode_takes_writes_without_a_key_only_on_loopback(
    tiny_encoder_path: Path, store_dir: Path
) -> None:
    from pydantic import ValidationError

    from app.config import Settings

    with pytest.raises(ValidationError, match="loopback"):
        Settings(insecure_dev_mode=True, host="0.0.0.0")
    with make_client(tiny_encoder_path, store_dir, api_keys="", insecure_dev_mode=True) as client:
        client.base_url = "http://127.0.0.1"  # a connection to loopback (tests/app/test_dev_mode.py)
        r = client.post(
            "/index",
            files={"image": ("n.png", image_bytes(4242, "PNG"), "image/png")},
            data={"sku": "DEV-1", "title": "Dev product"},
        )
        assert r.status_code == 201, r.text
