"""`lookalike index check|outliers|rebuild|info` on real stores, and the problems check finds."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from index import ProductStore
from lookalike.cli import main as cli
from ops.check import check_store
from ops.outliers import outlier_scores
from tests.index.conftest import DIM, FP, product, unit


def clustered_store(directory: Path, odd_one: bool = True) -> ProductStore:
    """Four tight clusters of 10 products, and one product far from all of them."""
    rng = np.random.default_rng(0)
    centres = unit(rng, 4)
    vectors = np.repeat(centres, 10, axis=0) + 0.05 * rng.normal(size=(40, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    store = ProductStore(directory, FP, DIM)
    store.add_products([product(i, vectors[i : i + 1]) for i in range(40)])
    if odd_one:
        odd = -centres.sum(axis=0, keepdims=True)
        store.add_product(product(99, odd / np.linalg.norm(odd)))
    return store


def test_a_sound_store_passes_and_each_kind_of_damage_is_found(tmp_path: Path) -> None:
    store = clustered_store(tmp_path / "s")
    assert check_store(store) == []
    first = store.get_by_sku("SKU-0")
    assert first is not None
    store.image_file(first.images[0]).write_bytes(b"tampered")
    second = store.get_by_sku("SKU-1")
    assert second is not None
    store.image_file(second.images[0]).unlink()
    store.close()
    with sqlite3.connect(tmp_path / "s" / ProductStore.DB_NAME) as db:  # damage behind the store's back
        db.execute("UPDATE images SET embedding = ? WHERE id = 3", (np.full(DIM, 2.0, np.float32).tobytes(),))
        db.execute("UPDATE images SET embedding = ? WHERE id = 4", (b"short",))
    with ProductStore(tmp_path / "s") as store:
        problems = "\n".join(check_store(store))
    assert "does not match its sha256" in problems
    assert "is missing" in problems
    assert "image 3: embedding is not a finite unit vector" in problems
    assert "image 4: embedding of 5 bytes" in problems


def test_the_odd_photo_is_the_top_outlier(tmp_path: Path) -> None:
    with clustered_store(tmp_path / "s") as store:
        top = outlier_scores(store, k=5, top=3)
        assert [o.sku for o in top][0] == "SKU-99"
        assert top[0].score > 2 * top[1].score
        with pytest.raises(ValueError):
            outlier_scores(store, k=0)


def test_cli_check_outliers_rebuild_and_info(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clustered_store(tmp_path / "s").close()
    store = str(tmp_path / "s")
    cli(["index", "check", "--store", store])
    assert "0 problem(s); 41 products, 41 images" in capsys.readouterr().out

    cli(["index", "outliers", "--store", store, "--top", "2", "--json"])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == 2 and lines[0]["sku"] == "SKU-99"

    cli(["index", "rebuild", "--store", store, "--type", "HNSW32"])
    assert "built HNSW32 over 41 vectors" in capsys.readouterr().out
    cli(["index", "info", "--store", store])
    info = json.loads(capsys.readouterr().out)
    assert info["type"] == "HNSW32" and info["images"] == 41 and info["device"] == "cpu"

    with pytest.raises(SystemExit) as exit_:
        cli(["index", "rebuild", "--store", store, "--type", "IVF99,Bogus"])
    assert exit_.value.code == 2 and "unknown index type" in capsys.readouterr().err


def test_cli_check_fails_on_a_damaged_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with clustered_store(tmp_path / "s", odd_one=False) as store:
        first = store.get_by_sku("SKU-0")
        assert first is not None
        store.image_file(first.images[0]).unlink()
    with pytest.raises(SystemExit) as exit_:
        cli(["index", "check", "--store", str(tmp_path / "s")])
    assert exit_.value.code == 1 and "is missing" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_:
        cli(["index", "check", "--store", str(tmp_path / "nothing")])
    assert exit_.value.code == 2
