"""A Parquet catalog reads as the same items as the CSV with the same rows; bad ones are explained."""

import csv
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from encoder.catalog import read_catalog

ROWS = [
    {"sku": "A", "title": "Red dress", "category": "dress", "price": 19.5, "image_path": "img/a.jpg"},
    {"sku": "B", "title": "", "category": None, "price": None, "image_path": "img/b.jpg"},
    {"sku": "C", "title": "Hat", "category": "hat", "price": 3.0, "image_path": "img/c.jpg"},
]
EXTRA = ["img/a2.jpg", None, "img/c2.jpg"]
ATTRIBUTES = [{"colour": "red", "size": 38}, {}, {"colour": "blue"}]


def write_csv(path: Path) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[*ROWS[0], "image_path_2", "attributes"])
        writer.writeheader()
        for row, extra, attributes in zip(ROWS, EXTRA, ATTRIBUTES, strict=True):
            writer.writerow({**row, "image_path_2": extra or "", "attributes": json.dumps(attributes)})


def test_parquet_with_typed_columns_reads_as_the_csv(tmp_path: Path) -> None:
    write_csv(tmp_path / "catalog.csv")
    # typed columns, the attributes as JSON text, the second image in its own column
    table = pa.Table.from_pylist(
        [
            {**row, "image_path_2": extra, "attributes": json.dumps(attributes)}
            for row, extra, attributes in zip(ROWS, EXTRA, ATTRIBUTES, strict=True)
        ]
    )
    pq.write_table(table, tmp_path / "catalog.parquet")
    from_csv = read_catalog(tmp_path / "catalog.csv")
    assert read_catalog(tmp_path / "catalog.parquet") == from_csv
    assert from_csv[0].image_paths == (tmp_path / "img/a.jpg", tmp_path / "img/a2.jpg")
    assert from_csv[1].title == "B" and from_csv[1].price is None and from_csv[1].category is None


def test_parquet_list_of_paths_and_map_attributes(tmp_path: Path) -> None:
    write_csv(tmp_path / "catalog.csv")
    table = pa.table(
        {
            "sku": [r["sku"] for r in ROWS],
            "title": [r["title"] for r in ROWS],
            "category": [r["category"] for r in ROWS],
            "price": pa.array([float("nan") if r["price"] is None else r["price"] for r in ROWS]),
            "image_paths": [[r["image_path"], *([e] if e else [])] for r, e in zip(ROWS, EXTRA, strict=True)],
            "attributes": pa.array(
                [[(k, json.dumps(v)) for k, v in a.items()] for a in ATTRIBUTES],
                type=pa.map_(pa.string(), pa.string()),
            ),
        }
    )
    pq.write_table(table, tmp_path / "catalog.parquet")
    items = read_catalog(tmp_path / "catalog.parquet")
    expected = read_catalog(tmp_path / "catalog.csv")
    assert [i.image_paths for i in items] == [i.image_paths for i in expected]
    assert items[1].price is None  # NaN, as pandas writes a missing number, is no price
    assert items[0].attributes == {"colour": '"red"', "size": "38"}  # a map's values are kept as given


def test_bad_parquet_catalogs_are_explained(tmp_path: Path) -> None:
    pq.write_table(pa.table({"name": ["A"], "picture": ["x.jpg"]}), tmp_path / "cols.parquet")
    with pytest.raises(ValueError, match="needs columns sku, title"):
        read_catalog(tmp_path / "cols.parquet")
    pq.write_table(pa.table({"sku": ["A"], "title": ["a"], "image_path": [None]}), tmp_path / "noimg.parquet")
    with pytest.raises(ValueError, match="row 1: every row needs a sku and at least one image"):
        read_catalog(tmp_path / "noimg.parquet")
    pq.write_table(
        pa.table({"sku": ["A"], "title": ["a"], "image_path": ["x.jpg"], "attributes": ["[1, 2]"]}),
        tmp_path / "attrs.parquet",
    )
    with pytest.raises(ValueError, match="attributes must be a JSON object"):
        read_catalog(tmp_path / "attrs.parquet")
    (tmp_path / "fake.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(ValueError, match="not a readable Parquet file"):
        read_catalog(tmp_path / "fake.parquet")
