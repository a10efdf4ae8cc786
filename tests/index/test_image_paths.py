"""Stored image paths: only the store's own content-addressed names, only inside the store, before
any read, write or unlink, in the store itself and in check and backup."""

from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from encoder import sniff_format
from index import ProductStore
from index.images import StoredPathError, image_relpath, resolve_image_path
from ops.backup import backup_store
from ops.check import check_store
from tests.conftest import image_bytes
from tests.index.conftest import DIM, FP, product, unit

SECRET = b"SENTINEL: outside the store"
DIGEST = hashlib.sha256(b"x").hexdigest()


def test_the_names_the_store_writes_are_the_names_it_accepts(tmp_path: Path) -> None:
    vectors = unit(np.random.default_rng(0), 3)
    with ProductStore(tmp_path / "s", FP, DIM) as store:
        for i, fmt in enumerate(("JPEG", "PNG", "GIF")):
            data = image_bytes(i, fmt)
            p = store.add_product(replace(product(i, vectors[i : i + 1]), images=(data,)))
            image = p.images[0]
            digest = hashlib.sha256(data).hexdigest()
            assert image.path == image_relpath(digest, sniff_format(data))
            assert store.image_file(image) == resolve_image_path(tmp_path / "s", image.path, digest)
            assert store.image_file(image).read_bytes() == data


@pytest.mark.parametrize(
    "path",
    [
        "../../x",
        "/etc/passwd",
        f"images/{DIGEST[:2]}/../{DIGEST[:2]}/{DIGEST}.jpg",
        f"images/00/{DIGEST}.jpg",  # the folder is not the hash's first two digits
        f"images/{DIGEST[:2]}/{DIGEST}.exe",
        f"images/{DIGEST[:2]}/{DIGEST.upper()}.jpg",
        f"images/{DIGEST[:2]}/{DIGEST}.jpg/..",
        f"images/{DIGEST[:2]}/{DIGEST}.jpg\x00",
        f"./images/{DIGEST[:2]}/{DIGEST}.jpg",
        "",
    ],
)
def test_a_path_of_another_shape_is_refused(tmp_path: Path, path: str) -> None:
    with pytest.raises(StoredPathError, match="not a file name this store writes"):
        resolve_image_path(tmp_path, path)


def test_a_well_formed_path_of_another_hash_or_through_a_symlink_is_refused(tmp_path: Path) -> None:
    good = image_relpath(DIGEST, "jpeg")
    with pytest.raises(StoredPathError, match="not a file name"):
        resolve_image_path(tmp_path, good, content_hash="0" * 64)
    (tmp_path / "outside").mkdir()
    (tmp_path / "store" / "images").mkdir(parents=True)
    (tmp_path / "store" / "images" / DIGEST[:2]).symlink_to(tmp_path / "outside", target_is_directory=True)
    with pytest.raises(StoredPathError, match="outside the store"):
        resolve_image_path(tmp_path / "store", good)


def _tampered_store(tmp_path: Path) -> tuple[Path, Path, int]:
    """A store of 3 products whose first image row points at a file outside: (store, file, product id)."""
    sentinel = tmp_path / "secret.jpg"
    tmp_path.mkdir(exist_ok=True)
    sentinel.write_bytes(SECRET)
    vectors = unit(np.random.default_rng(0), 3)
    with ProductStore(tmp_path / "s", FP, DIM) as store:
        first = store.add_product(product(0, vectors[:1]))
        store.add_products([product(i, vectors[i : i + 1]) for i in (1, 2)])
    with sqlite3.connect(tmp_path / "s" / ProductStore.DB_NAME) as db:
        db.execute("UPDATE images SET path = ? WHERE id = ?", ("../secret.jpg", first.images[0].id))
    return tmp_path / "s", sentinel, first.id


def test_the_store_never_follows_a_tampered_row(tmp_path: Path) -> None:
    directory, sentinel, product_id = _tampered_store(tmp_path)
    with ProductStore(directory) as store:
        product_ = store.get_product(product_id)
        assert product_ is not None and product_.images[0].path == "../secret.jpg"
        with pytest.raises(StoredPathError):
            store.image_file(product_.images[0])
        replaced = store.add_images(
            product_id, [image_bytes(50)], unit(np.random.default_rng(1), 1), replace=True
        )
        assert replaced is not None  # the row is gone, its "file" was left alone
        assert sentinel.read_bytes() == SECRET
        problems = check_store(store)
        assert problems == [], problems
    _, sentinel, product_id = _tampered_store(tmp_path / "again")
    with ProductStore(tmp_path / "again" / "s") as store:
        assert store.remove_product(product_id) and store.count() == 2
    assert sentinel.read_bytes() == SECRET


def test_check_reports_a_tampered_row_and_backup_refuses_it(tmp_path: Path) -> None:
    directory, sentinel, _ = _tampered_store(tmp_path)
    with ProductStore(directory) as store:
        problems = check_store(store)
    assert len(problems) == 1 and "'../secret.jpg' is not a file name this store writes" in problems[0]
    with pytest.raises(ValueError, match="not a file name this store writes"):
        backup_store(directory, tmp_path / "backup")
    assert not (tmp_path / "backup").exists() and not (tmp_path / ".backup.partial").exists()
    assert sentinel.read_bytes() == SECRET
