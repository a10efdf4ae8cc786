"""`lookalike index backup` of a store that is open and being written, restored and compared."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from index import ProductStore
from lookalike.cli import main as cli
from ops.backup import backup_store
from ops.check import check_store
from tests.index.conftest import DIM, FP, product, unit


def _serving_store(directory: Path) -> tuple[ProductStore, np.ndarray]:
    """An open store with a snapshot that is older than SQLite: 20 products, then a snapshot,
    then 6 more and a delete that only SQLite (and its write-ahead log) holds."""
    vectors = unit(np.random.default_rng(0), 26)
    store = ProductStore(directory, FP, DIM)
    store.add_products([product(i, vectors[i : i + 1]) for i in range(20)])
    store.snapshot()
    store.add_products([product(i, vectors[i : i + 1]) for i in range(20, 26)])
    gone = store.get_by_sku("SKU-3")
    assert gone is not None and store.remove_product(gone.id)
    return store, vectors


def _answers(store: ProductStore, queries: np.ndarray) -> list[list[tuple[str, float, int]]]:
    return [[(h.product.sku, round(h.score, 5), h.image_id) for h in row] for row in store.search(queries, 5)]


def test_a_backup_taken_while_the_store_is_open_holds_every_committed_write(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store, vectors = _serving_store(tmp_path / "live")
    try:
        assert (tmp_path / "live" / f"{ProductStore.DB_NAME}-wal").stat().st_size > 0  # not checkpointed
        cli(["index", "backup", "--store", str(tmp_path / "live"), "--to", str(tmp_path / "backup")])
        assert "backed up 25 products, 25 image files" in capsys.readouterr().out
        assert sorted(p.name for p in tmp_path.iterdir()) == ["backup", "live"]  # no partial copy left
        with ProductStore(tmp_path / "backup", FP, DIM) as copy:
            assert check_store(copy) == []
            assert {p.sku for p in copy.list_products(limit=100)} == {f"SKU-{i}" for i in range(26)} - {
                "SKU-3"
            }
            assert _answers(copy, vectors) == _answers(store, vectors)
        store.add_product(product(40, vectors[:1]))  # the original serves on, unchanged by the backup
        assert store.count() == 26
    finally:
        store.close()


def test_backup_refuses_a_used_destination_a_missing_store_and_its_own_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store, _ = _serving_store(tmp_path / "live")
    store.close()
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "keep.txt").write_text("mine")
    for store_dir, to, says in (
        (tmp_path / "live", tmp_path / "used", "is not an empty directory"),
        (tmp_path / "nothing", tmp_path / "new", "holds no SQLite product store"),
        (tmp_path / "live", tmp_path / "live" / "inside", "is inside the store"),
    ):
        with pytest.raises(SystemExit) as exit_:
            cli(["index", "backup", "--store", str(store_dir), "--to", str(to)])
        assert exit_.value.code == 2 and says in capsys.readouterr().err
    assert (tmp_path / "used" / "keep.txt").read_text() == "mine" and len(
        list((tmp_path / "used").iterdir())
    ) == 1
    assert not (tmp_path / "new").exists() and not (tmp_path / "live" / "inside").exists()


def test_a_damaged_image_is_copied_and_reported_a_vanished_one_fails_the_backup(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store, _ = _serving_store(tmp_path / "live")
    first, second = store.get_by_sku("SKU-0"), store.get_by_sku("SKU-1")
    assert first is not None and second is not None
    store.image_file(first.images[0]).write_bytes(b"tampered")
    with pytest.raises(SystemExit) as exit_:
        cli(["index", "backup", "--store", str(tmp_path / "live"), "--to", str(tmp_path / "b1")])
    assert exit_.value.code == 1
    assert f"{first.images[0].path} does not match its sha256" in capsys.readouterr().out
    assert (tmp_path / "b1" / first.images[0].path).read_bytes() == b"tampered"

    store.image_file(second.images[0]).unlink()
    with pytest.raises(SystemExit) as exit_:
        cli(["index", "backup", "--store", str(tmp_path / "live"), "--to", str(tmp_path / "b2")])
    assert exit_.value.code == 2 and "1 image file(s) disappeared" in capsys.readouterr().err
    assert not (tmp_path / "b2").exists() and not (tmp_path / ".b2.partial").exists()
    store.close()


def test_every_file_and_directory_of_a_backup_is_fsynced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A backup that reported success must survive a power loss: each file it wrote, each of its
    directories and the directory that holds it (the final rename) reach the disk."""
    store, _ = _serving_store(tmp_path / "live")
    store.close()
    synced: set[tuple[int, int]] = set()
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        st = os.fstat(fd)
        synced.add((st.st_dev, st.st_ino))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    (tmp_path / "backups").mkdir()
    backup_store(tmp_path / "live", tmp_path / "backups" / "b1")
    written = [tmp_path / "backups", *(tmp_path / "backups").rglob("*")]
    assert any(p.name == ProductStore.SNAPSHOT_NAME for p in written) and len(written) > 25
    unsynced = [p for p in written if ((st := p.stat()).st_dev, st.st_ino) not in synced]
    assert unsynced == []
