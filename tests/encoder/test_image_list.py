"""Training's view of a catalog (``read_image_list``) reads the same photos as the build's
(``read_catalog``): every photo column, CSV or Parquet, folder labels from the parent folder."""

from __future__ import annotations

import csv
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from encoder.catalog import read_catalog, read_image_list

ROWS = [
    {"sku": "A", "title": "t", "category": "dress", "image_path": "img/a.jpg", "image_path_2": "img/a2.jpg"},
    {"sku": "B", "title": "t", "category": "", "image_path": "img/b.jpg", "image_path_2": ""},
]


def _write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_every_photo_column_is_read_with_the_rows_label(tmp_path: Path) -> None:
    path = _write_csv(tmp_path / "catalog.csv", ROWS)
    pairs = read_image_list(path)
    assert pairs == [
        (tmp_path / "img/a.jpg", "dress"),
        (tmp_path / "img/a2.jpg", "dress"),
        (tmp_path / "img/b.jpg", ""),
    ]
    assert [p for p, _ in pairs] == [p for item in read_catalog(path) for p in item.image_paths]
    assert [label for _, label in read_image_list(path, "sku")] == ["A", "A", "B"]


def test_a_parquet_list_column_reads_as_the_csv(tmp_path: Path) -> None:
    csv_path = _write_csv(tmp_path / "catalog.csv", ROWS)
    photos = [["img/a.jpg", "img/a2.jpg"], ["img/b.jpg"]]  # one list column instead of two
    rows = [
        {"sku": r["sku"], "category": r["category"] or None, "image_path": p}
        for r, p in zip(ROWS, photos, strict=True)
    ]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "photos.parquet")
    assert read_image_list(tmp_path / "photos.parquet") == read_image_list(csv_path)


def test_photo_lists_need_no_sku_and_may_repeat_one(tmp_path: Path) -> None:
    rows = [{"image_path": f"q{i}.jpg", "sku": "A", "title": "t"} for i in range(3)]  # one product
    path = _write_csv(tmp_path / "queries.csv", rows)
    assert read_image_list(path, "sku") == [(tmp_path / f"q{i}.jpg", "A") for i in range(3)]
    with pytest.raises(ValueError, match="duplicate skus"):
        read_catalog(path)
    unlabeled = _write_csv(tmp_path / "shoppers.csv", [{"image_path": "u.jpg"}])
    assert read_image_list(unlabeled) == [(tmp_path / "u.jpg", "")]


def test_a_folder_is_labelled_by_parent_folder(tmp_path: Path) -> None:
    for rel in ("dress/a.jpg", "hat/b.png", "loose.jpg"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    assert read_image_list(tmp_path) == [
        (tmp_path / "dress/a.jpg", "dress"),
        (tmp_path / "hat/b.png", "hat"),
        (tmp_path / "loose.jpg", tmp_path.name),
    ]


def test_bad_photo_lists_are_explained(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="image_path"):
        read_image_list(_write_csv(tmp_path / "cols.csv", [{"picture": "x.jpg"}]))
    rows = [{"image_path": "x.jpg"}, {"image_path": ""}]
    with pytest.raises(ValueError, match=r"empty\.csv:3: every row needs at least one image path"):
        read_image_list(_write_csv(tmp_path / "empty.csv", rows))
    with pytest.raises(ValueError, match="neither"):
        read_image_list(tmp_path / "photos.txt")
