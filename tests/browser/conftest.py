"""A real server on a small store of real demo photos, and headless Debian Chromium driven by
Playwright (never a downloaded browser). Screenshots land in test-artifacts/screenshots/, or
under $LOOKALIKE_TEST_ARTIFACTS."""

from __future__ import annotations

import csv
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.conftest import build_store
from tests.server import running_server

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "demo"
CHROMIUM = Path("/usr/bin/chromium")
API_KEY = "browser-test-key"
CATEGORIES = ("dress", "hat", "shoes", "skirt")
PER_CATEGORY = 4
# Headless, no sandbox (root in CI), and none of the background connections a closed network refuses.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@dataclass(frozen=True)
class Shop:
    base: str
    catalog: list[dict[str, str]]  # the demo rows in the store: sku, title, category, price, image_path
    spare_photos: list[Path]  # demo photos that are not in the store
    store_copy: Path  # the same store, for a second server

    def photo(self, sku: str) -> Path:
        row = next(r for r in self.catalog if r["sku"] == sku)
        return DEMO / row["image_path"]


def artifacts_dir() -> Path:
    path = Path(os.environ.get("LOOKALIKE_TEST_ARTIFACTS", ROOT / "test-artifacts")) / "screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is missing: run `make system-deps` (apt-get install chromium)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def shop(tiny_encoder_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    """16 demo products (4 categories) in a real store, served by a real `lookalike serve`."""
    with (DEMO / "catalog.csv").open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    chosen = [r for c in CATEGORIES for r in [r for r in rows if r["category"] == c][:PER_CATEGORY]]
    spare = [DEMO / r["image_path"] for r in rows if r["category"] == "pants"][:3]
    work = tmp_path_factory.mktemp("shop")
    catalog = work / "catalog.csv"
    with catalog.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["sku", "title", "category", "price", "image_path"])
        writer.writeheader()
        for r in chosen:
            writer.writerow({**{k: r[k] for k in ("sku", "title", "category", "price")},
                             "image_path": str(DEMO / r["image_path"])})
    store = build_store(catalog, tiny_encoder_path, work / "store")
    shutil.copytree(store, work / "store-copy")  # for a second server, before this one writes
    with running_server(tiny_encoder_path, store, LOOKALIKE_API_KEYS=API_KEY) as (base, _):
        yield Shop(base, chosen, spare, work / "store-copy")
    shutil.rmtree(work, ignore_errors=True)


@pytest.fixture()
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser context (no storage carried over) at desktop size."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20_000)
    yield page
    context.close()
