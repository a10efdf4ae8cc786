from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app
from tests.conftest import build_store

API_KEY = "test-key"


@pytest.fixture()
def store_dir(photo_folder: Path, tiny_encoder_path: Path, tmp_path: Path) -> Path:
    """A real store of the 12 photos, built with the tiny encoder."""
    return build_store(photo_folder, tiny_encoder_path, tmp_path / "store")


def make_client(tiny_encoder_path: Path, store_dir: Path, **settings: object) -> TestClient:
    base = {
        "encoder_path": tiny_encoder_path,
        "store_dir": store_dir,
        "api_keys": API_KEY,
        "max_upload_bytes": 300_000,
        "max_wait_ms": 2,
        # the tiny random encoder maps unrelated test pictures close together: only copies count
        "duplicate_threshold": 0.995,
    }
    return TestClient(create_app(Settings(**{**base, **settings})))


@pytest.fixture()
def client(tiny_encoder_path: Path, store_dir: Path) -> Iterator[TestClient]:
    with make_client(tiny_encoder_path, store_dir) as c:
        yield c
