"""POST /admin/reload loads only from the configured roots (LOOKALIKE_RELOAD_ROOTS) and the
configured database: a key holder cannot make the server read, create or connect to anything
else, and the answers do not tell which paths exist outside the roots."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient

from app.config import Settings
from encoder import Encoder, EncoderConfig, save_encoder
from tests.app.conftest import API_KEY, make_client
from tests.conftest import build_store

KEY = {"X-API-Key": API_KEY}


@pytest.fixture()
def outside(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder under none of the roots (the roots are the encoder's and the store's folders)."""
    return tmp_path_factory.mktemp("outside")


def _answer(client: TestClient, body: dict[str, str]) -> tuple[int, str, str]:
    r = client.post("/admin/reload", json=body, headers=KEY)
    error = r.json().get("error", {})
    return r.status_code, error.get("code", ""), error.get("message", "")


def _fingerprint(client: TestClient) -> str:
    return client.get("/health").json()["encoder"]["fingerprint"]


def test_the_default_roots_are_the_folders_of_the_configured_encoder_and_store(tmp_path: Path) -> None:
    settings = Settings(
        encoder_path=tmp_path / "models" / "encoder.pt", store_dir=tmp_path / "data" / "store"
    )
    assert settings.reload_roots_list == [tmp_path / "models", tmp_path / "data"]
    configured = Settings(reload_roots=f" {tmp_path / 'a'} ,, {tmp_path / 'b'}")
    assert configured.reload_roots_list == [tmp_path / "a", tmp_path / "b"]


def test_paths_outside_the_roots_are_refused_like_missing_ones_and_nothing_is_created(
    tiny_encoder_path: Path, store_dir: Path, outside: Path, tmp_path: Path
) -> None:
    """The store is tmp_path/store, so the roots are tmp_path and the encoder's folder. A real
    encoder and a real store outside them (either would load) are refused exactly like paths
    that do not exist, also by a `..` path, a symlink inside the roots, or a root's own name."""
    shutil.copy(tiny_encoder_path, outside / "encoder.pt")
    shutil.copytree(store_dir, outside / "store")  # same encoder: a reload would switch to it
    (tmp_path / "link-to-store").symlink_to(outside / "store", target_is_directory=True)
    (tmp_path / "link-to-encoder.pt").symlink_to(outside / "encoder.pt")
    dotdot = f"{tmp_path}/../{outside.name}/store"  # tmp_path and outside are siblings
    assert Path(dotdot).resolve() == (outside / "store").resolve()
    before = sorted(outside.rglob("*"))
    with make_client(tiny_encoder_path, store_dir) as client:
        served = _fingerprint(client)
        missing_encoder = _answer(client, {"encoder_path": str(tmp_path / "missing.pt")})
        missing_store = _answer(client, {"store_dir": str(tmp_path / "missing")})
        assert missing_encoder[:2] == (422, "encoder_not_found")
        assert missing_store[:2] == (422, "store_not_found")
        encoders = ["/etc/passwd", str(outside / "encoder.pt"), str(tmp_path / "link-to-encoder.pt")]
        encoders += [f"{tmp_path}/../{outside.name}/encoder.pt", str(outside / "no-such.pt"), "/etc"]
        stores = [str(outside / "store"), dotdot, str(tmp_path / "link-to-store"), "/etc", "/"]
        stores += [str(outside / "new"), str(outside / "a" / "b"), "relative/store", "bad\x00name"]
        for encoder in encoders:
            assert _answer(client, {"encoder_path": encoder}) == missing_encoder, encoder
        for store in stores:
            assert _answer(client, {"store_dir": store}) == missing_store, store
            assert (
                _answer(client, {"encoder_path": str(tiny_encoder_path), "store_dir": store}) == missing_store
            )
        assert _fingerprint(client) == served
        assert client.get("/products", params={"limit": 200}).json()[0]["sku"]  # still the served store
    for message in (missing_encoder[2], missing_store[2]):
        assert "LOOKALIKE_RELOAD_ROOTS" in message
        assert str(outside) not in message and str(tmp_path / "missing") not in message
    assert sorted(outside.rglob("*")) == before  # nothing created, nothing written
    assert not (tmp_path / "missing").exists() and not Path("relative").exists()


def test_a_reload_within_the_roots_still_switches(
    tiny_encoder_path: Path, store_dir: Path, tmp_path: Path
) -> None:
    """A store built beside the served one (the documented rollout: /data/store-next) reloads."""
    shutil.copytree(store_dir, tmp_path / "store-next")
    (tmp_path / "current").symlink_to(tmp_path / "store-next", target_is_directory=True)
    with make_client(tiny_encoder_path, store_dir) as client:
        r = client.post("/admin/reload", json={"store_dir": f"{store_dir}/../current"}, headers=KEY)
        assert r.status_code == 200 and r.json()["changed"], r.text
        assert Path(r.json()["current"]["store_dir"]) == (tmp_path / "store-next").resolve()
        r = client.post("/admin/reload", json={}, headers=KEY)  # the configured pair, back again
        assert r.status_code == 200 and r.json()["changed"], r.text


def test_configured_roots_replace_the_default_ones(
    tiny_encoder_path: Path, store_dir: Path, outside: Path, tmp_path: Path
) -> None:
    shutil.copytree(store_dir, outside / "store")
    shutil.copytree(store_dir, tmp_path / "store-next")
    with make_client(
        tiny_encoder_path, store_dir, reload_roots=f"{outside},{tiny_encoder_path.parent}"
    ) as client:
        assert _answer(client, {"store_dir": str(tmp_path / "store-next")})[:2] == (422, "store_not_found")
        r = client.post("/admin/reload", json={"store_dir": str(outside / "store")}, headers=KEY)
        assert r.status_code == 200 and r.json()["changed"], r.text
        r = client.post("/admin/reload", headers=KEY)  # the configured pair is always allowed
        assert r.status_code == 200 and r.json()["changed"], r.text


def test_a_database_url_in_the_request_is_refused(tiny_encoder_path: Path, store_dir: Path) -> None:
    with make_client(tiny_encoder_path, store_dir) as client:
        served = _fingerprint(client)
        for url in ("postgresql://nobody@127.0.0.1:1/none", ""):
            status, code, message = _answer(client, {"database_url": url})
            assert (status, code) == (422, "database_url_not_accepted")
            assert "LOOKALIKE_DATABASE_URL" in message and "127.0.0.1" not in message
        assert _fingerprint(client) == served


def test_library_errors_are_not_echoed(tiny_encoder_path: Path, store_dir: Path, tmp_path: Path) -> None:
    """A file that is no encoder, a database that is no SQLite: plain messages; the detail
    (the library's own words) goes to the server's log only."""
    (tmp_path / "junk.pt").write_bytes(b"PK\x03\x04 secret-content-of-the-file" * 50)
    (tmp_path / "junk-store").mkdir()
    (tmp_path / "junk-store" / "catalog.sqlite3").write_bytes(b"secret-content-of-the-file" * 200)
    with make_client(tiny_encoder_path, store_dir) as client:
        status, code, message = _answer(client, {"encoder_path": str(tmp_path / "junk.pt")})
        assert (status, code) == (422, "invalid_encoder")
        assert "secret" not in message and "junk" not in message and "zip" not in message.lower()
        status, code, message = _answer(client, {"store_dir": str(tmp_path / "junk-store")})
        assert (status, code) == (422, "invalid_store")
        assert "junk" not in message and "database disk image" not in message and "file is not" not in message


def _second_encoder(folder: Path) -> Path:
    torch.manual_seed(1)
    path = folder / "encoder-b.pt"
    save_encoder(Encoder(EncoderConfig(arch="mobilenet_v3_small", image_size=64)), path)
    return path


def test_with_postgresql_a_refused_reload_creates_no_store_directory(
    tiny_encoder_path: Path, photo_folder: Path, database_url: str, outside: Path, tmp_path: Path
) -> None:
    """With PostgreSQL the store directory is a cache a reload may create: only when it
    switches, only under the roots, and from the configured database."""
    build_store(photo_folder, tiny_encoder_path, tmp_path / "build", "--database-url", database_url)
    other = _second_encoder(tmp_path)
    roots = f"{tmp_path},{tiny_encoder_path.parent}"
    with make_client(
        tiny_encoder_path, tmp_path / "cache-a", database_url=database_url, reload_roots=roots
    ) as client:
        served = _fingerprint(client)
        status, code, _ = _answer(client, {"store_dir": str(outside / "cache")})
        assert (status, code) == (422, "store_not_found")
        status, code, _ = _answer(
            client, {"encoder_path": str(other), "store_dir": str(tmp_path / "x" / "cache")}
        )
        assert (status, code) == (409, "encoder_mismatch")  # the configured catalog holds another encoder's
        assert not (tmp_path / "x").exists() and not any(outside.iterdir())
        assert _fingerprint(client) == served
        r = client.post("/admin/reload", json={"store_dir": str(tmp_path / "cache-b")}, headers=KEY)
        assert r.status_code == 200 and r.json()["changed"], r.text  # same catalog, a new cache
        assert r.json()["current"]["products"] == 12 and (tmp_path / "cache-b").is_dir()
