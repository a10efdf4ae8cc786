"""Shared fixtures: small real images and a small real encoder, made by the tests themselves."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from encoder import Encoder, EncoderConfig, save_encoder
from ops.build import get_args_parser as build_args
from ops.build import main as build_main
from tests.postgres import new_database, running_postgres

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "clothing-small"


def build_store(catalog: Path, encoder: Path, store: Path, *extra: str) -> Path:
    """``lookalike build`` of ``catalog`` with ``encoder`` into ``store`` (quiet, no loader
    workers); ``extra``: more build options. Returns ``store``."""
    args = ["--catalog", str(catalog), "--encoder", str(encoder), "--store", str(store)]
    build_main(build_args().parse_args([*args, "--workers", "0", "--no-progress", *extra])).close()
    return store


def make_image(seed: int, size: tuple[int, int] = (96, 128)) -> Image.Image:
    """A distinct RGB picture per seed: a colour gradient with a few random rectangles."""
    rng = np.random.default_rng(seed)
    w, h = size
    base = rng.integers(0, 256, 3)
    ramp = np.linspace(0, 1, w)[None, :, None] * rng.integers(-120, 120, 3)
    pixels = np.clip(base + ramp + np.zeros((h, 1, 1)), 0, 255)
    for _ in range(4):
        x0, y0 = rng.integers(0, w - 10), rng.integers(0, h - 10)
        pixels[y0 : y0 + rng.integers(5, h // 2), x0 : x0 + rng.integers(5, w // 2)] = rng.integers(0, 256, 3)
    return Image.fromarray(pixels.astype(np.uint8))


def image_bytes(seed: int, fmt: str = "JPEG", size: tuple[int, int] = (96, 128)) -> bytes:
    buf = io.BytesIO()
    make_image(seed, size).save(buf, format=fmt, quality=95)
    return buf.getvalue()


@pytest.fixture(scope="session")
def tiny_encoder_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised mobilenet_v3_small at 64 px, saved as encoder.pt."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("encoder") / "encoder.pt"
    save_encoder(Encoder(EncoderConfig(arch="mobilenet_v3_small", image_size=64)), path)
    return path


@pytest.fixture()
def photo_folder(tmp_path: Path) -> Path:
    """12 JPEGs in 3 category folders: <root>/<category>/<sku>.jpg."""
    root = tmp_path / "photos"
    for i in range(12):
        category = ["red", "green", "blue"][i % 3]
        (root / category).mkdir(parents=True, exist_ok=True)
        (root / category / f"SKU-{i:02d}.jpg").write_bytes(image_bytes(i))
    return root


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A real PostgreSQL server for the whole session (started on first use); its URL."""
    with running_postgres() as url:
        yield url


@pytest.fixture()
def database_url(postgres_server: str) -> str:
    """The URL of a new, empty database on the session's PostgreSQL server."""
    return new_database(postgres_server)
