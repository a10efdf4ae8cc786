"""Over HTTP: text queries the store will not run are clear 4xx/503 answers, and a write that is
committed is a success even when the vector index fails to follow it at once."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import index.db.sqlite
import index.vectors.cache
from index.text_query import MAX_WORDS
from index.vectors import ChangeBatch
from tests.app.conftest import make_client
from tests.app.test_api import AUTH, add, search
from tests.conftest import image_bytes

HANG = 60.0  # seconds: only a hang takes this long


def test_a_text_query_of_too_many_words_is_422(client: TestClient) -> None:
    words = " ".join(f"w{i}" for i in range(MAX_WORDS + 1))
    r = client.get("/search", params={"q": words})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_query"
    assert f"at most {MAX_WORDS}" in r.json()["error"]["message"]
    r = search(client, image_bytes(1), q=words)  # refused before the photo is decoded
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_query"
    one_letter = " ".join("abcdefghijklmnop"[:MAX_WORDS])
    assert client.get("/search", params={"q": one_letter}).status_code == 200  # whole words: cheap


def test_a_text_query_past_the_time_limit_is_503(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(index.db.sqlite, "PROGRESS_STEPS", 1)
    monkeypatch.setattr(index.db.sqlite, "_expired", lambda deadline: True)  # every query runs too long
    r = client.get("/search", params={"q": "red"})
    assert r.status_code == 503 and r.json()["error"]["code"] == "query_timeout"
    assert r.headers["Retry-After"] == "1"
    r = search(client, image_bytes(1), q="red")
    assert r.status_code == 503 and r.json()["error"]["code"] == "query_timeout"
    monkeypatch.undo()
    assert client.get("/search", params={"q": "red"}).status_code == 200
    assert search(client, image_bytes(1), k=1).status_code == 200


def wait_until_ready(client: TestClient) -> dict:
    deadline = time.monotonic() + HANG
    while (body := client.get("/ready").json()) != {"status": "ready"}:
        assert time.monotonic() < deadline, f"still {body}"
        time.sleep(0.05)
    return body


def test_a_committed_write_is_2xx_when_the_vector_index_fails_to_follow(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FAISS fails after the commit (a GPU error) until ``healed``: the add is 201 and stored,
    /ready says degraded, and the background retry then makes it searchable and /ready ready."""
    real_apply = ChangeBatch.apply_to
    healed, failures = threading.Event(), []

    def apply_failing(self: ChangeBatch, vectors) -> None:
        if not healed.is_set():
            failures.append(1)
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        real_apply(self, vectors)

    monkeypatch.setattr(ChangeBatch, "apply_to", apply_failing)
    r = add(client, image_bytes(100), sku="AFTER-COMMIT")
    assert r.status_code == 201, r.text
    assert failures
    product = r.json()
    assert client.get(f"/products/{product['id']}").json()["sku"] == "AFTER-COMMIT"
    ready = client.get("/ready")
    assert ready.status_code == 200 and ready.json()["status"] == "degraded"
    assert "CUDA" not in ready.json()["detail"]  # the library's words stay in the log
    again = add(client, image_bytes(100), sku="AFTER-COMMIT")
    assert again.status_code == 409  # what a client retrying after a 500 got: it was stored

    healed.set()
    wait_until_ready(client)
    top = search(client, image_bytes(100), k=1).json()["results"][0]
    assert top["sku"] == "AFTER-COMMIT"
    assert client.get("/health").json()["vectors"] == client.get("/health").json()["products"] == 13


def test_a_delete_is_204_when_the_snapshot_after_it_fails(
    tiny_encoder_path: Path, store_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with make_client(tiny_encoder_path, store_dir) as client:
        store = client.app.state.runtime.store  # type: ignore[attr-defined]
        store.snapshot_every = 1  # every write writes a snapshot
        real_write = index.vectors.cache.write_snapshot
        healed, failures = threading.Event(), []

        def full_disk(*args, **kwargs) -> None:
            if not healed.is_set():
                failures.append(1)
                raise OSError(28, "No space left on device")
            real_write(*args, **kwargs)

        monkeypatch.setattr(index.vectors.cache, "write_snapshot", full_disk)
        victim = search(client, image_bytes(4), k=1).json()["results"][0]
        assert client.delete(f"/products/{victim['product_id']}", headers=AUTH).status_code == 204
        assert failures
        assert client.get(f"/products/{victim['product_id']}").status_code == 404
        assert client.get("/ready").json()["status"] == "degraded"
        assert search(client, image_bytes(4), k=1).json()["results"][0]["sku"] != victim["sku"]
        healed.set()
        wait_until_ready(client)
        assert store.applied_seq == store.vectors.snapshot_seq  # the snapshot owed was written
