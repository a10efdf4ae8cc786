"""The whole path: train 1 epoch on 16 photos -> build a store -> a real uvicorn server -> /search."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from index import ProductStore
from index.vectors import read_snapshot
from tests.conftest import image_bytes
from tests.server import running_server


def lookalike(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "lookalike", *args], check=True, timeout=600)


def test_train_build_serve_search(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    for i in range(16):
        (photos / f"cat{i % 4}").mkdir(parents=True, exist_ok=True)
        (photos / f"cat{i % 4}" / f"P{i:02d}.jpg").write_bytes(image_bytes(1000 + i))
    encoder = tmp_path / "encoder.pt"
    # the realistic path: ImageNet-initialised EfficientNet-Lite0, SimCLR fine-tune of the late blocks
    lookalike(
        "train",
        "--data",
        str(photos),
        "--arch",
        "efficientnet_lite0",
        "--init",
        "imagenet",
        "--freeze-blocks",
        "10",
        "--bn-eval",
        "--image-size",
        "64",
        "--embed-image-size",
        "96",
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--workers",
        "0",
        "--out",
        str(encoder),
        "--no-progress",
    )
    lookalike(
        "build",
        "--catalog",
        str(photos),
        "--encoder",
        str(encoder),
        "--store",
        str(tmp_path / "store"),
        "--workers",
        "0",
        "--no-progress",
    )

    with running_server(encoder, tmp_path / "store", LOOKALIKE_API_KEYS="e2e") as (base, server):
        r = httpx.post(
            f"{base}/search",
            files={"image": ("q.jpg", image_bytes(1005), "image/jpeg")},
            data={"k": "3"},
            timeout=30,
        )
        assert r.status_code == 200, r.text
        top, second = r.json()["results"][:2]
        assert top["sku"] == "P05" and top["score"] == pytest.approx(1.0, abs=1e-4)
        assert second["score"] < 0.999, "other products must not look identical"

        added = httpx.post(
            f"{base}/index",
            headers={"X-API-Key": "e2e"},
            files={"image": ("n.png", image_bytes(77, "PNG"), "image/png")},
            data={"sku": "NEW", "title": "New one"},
            timeout=30,
        )
        assert added.status_code == 201, added.text
    # a graceful shutdown (uvicorn re-raises the SIGTERM it handled) leaves a snapshot that holds the add
    assert server.returncode in (0, -signal.SIGTERM)
    index, _, _ = read_snapshot(tmp_path / "store" / ProductStore.SNAPSHOT_NAME)
    assert index.ntotal == 17
