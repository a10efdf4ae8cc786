"""Attributes stay valid JSON in the store: the one checker (encoder.attributes) and every way in
that does not pass through the HTTP API: the store API itself, a CSV or Parquet catalog, a build.

A NaN written with Python's json.dumps makes every attribute-filtered query fail on SQLite < 3.42
("malformed JSON"), and PostgreSQL refuses it.
"""

from __future__ import annotations

import csv
import json
import math
import sqlite3
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from encoder.attributes import (
    MAX_DEPTH,
    MAX_FILTER_KEYS,
    InvalidAttributes,
    attributes_json,
    check_attributes,
    parse_attributes,
)
from encoder.catalog import read_catalog
from index import ProductStore, SearchFilter
from tests.conftest import build_store, image_bytes
from tests.index.conftest import product, unit

NOT_JSON = [
    {"size": math.nan},
    {"weight": math.inf},
    {"sizes": [38, -math.inf]},
    {"fit": {"waist": {"cm": math.nan}}},
]
OVER_LIMITS = [
    {"notes": "x" * 20_000},
    {"k" * 500: 1},
    {f"k{i}": i for i in range(2_000)},
    {"a": json.loads("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1))},
    {"n": 2**70},
    {"when": b"bytes"},
    {1: "a key that is not text"},
]


@pytest.mark.parametrize(
    "text",
    [
        "[" * 200_000,
        "[" * 60_000,
        '{"a":' * 60_000,
        '{"a": "' + "[" * 30_000 + '"}',  # brackets in a string are text, but too much of it
        '{"a": NaN}',
        '{"a": -Infinity}',
        '{"a": 1e999}',
        '{"a": ' + "9" * 5_000 + "}",
        "{'a': 1}",
        "[1, 2]",
        "",
    ],
)
def test_parse_refuses_without_recursion_error_or_echo(text: str) -> None:
    with pytest.raises(InvalidAttributes) as refused:
        parse_attributes(text)
    assert len(str(refused.value)) < 200


def test_parse_accepts_json_objects_within_the_limits() -> None:
    text = '{"colour": "red", "size": 38, "eu": 38.5, "sale": true, "x": null, "brackets": "[[[[[[[[[[[["}'
    assert parse_attributes(text)["brackets"] == "[[[[[[[[[[[["
    nested = {"a": json.loads("[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1))}
    assert parse_attributes(json.dumps(nested)) == nested
    assert check_attributes(nested) is nested
    assert attributes_json({"a": 1.5}) == '{"a": 1.5}'


@pytest.mark.parametrize("value", NOT_JSON + OVER_LIMITS)
def test_check_refuses(value: object) -> None:
    with pytest.raises(InvalidAttributes):
        check_attributes(value)


def test_filters_are_bounded_and_finite() -> None:
    SearchFilter(attributes={f"k{i}": i for i in range(MAX_FILTER_KEYS)})
    for attributes in (
        {f"k{i}": i for i in range(MAX_FILTER_KEYS + 1)},
        {"size": math.nan},
        {"size": math.inf},
        {"k" * 500: 1},
        {"colour": "x" * 20_000},
        {"fit": {"waist": 70}},
        {"": 1},
    ):
        with pytest.raises(ValueError):
            SearchFilter(attributes=attributes)  # type: ignore[arg-type]


def _state(store: ProductStore) -> tuple[object, ...]:
    rows = [(p.id, p.sku, p.attributes, p.updated_at) for p in store.list_products(0, 1000)]
    files = sorted(p.name for p in (store.directory / ProductStore.IMAGES_DIR).rglob("*") if p.is_file())
    return rows, store.vector_count(), files


def _filters_work(store: ProductStore) -> None:
    query = unit(np.random.default_rng(9), 1)
    assert len(store.search(query, 5, SearchFilter(attributes={"colour": "red"}))[0]) == 2
    assert len(store.text_search("product", 5, SearchFilter(attributes={"colour": "red"}))) == 2


@pytest.mark.parametrize("value", NOT_JSON + OVER_LIMITS[:4])
def test_the_store_refuses_bad_attributes_and_keeps_what_it_has(store: ProductStore, value: dict) -> None:
    rng = np.random.default_rng(3)
    kept = store.add_products([product(i, unit(rng, 1)) for i in range(2)]).products
    before = _state(store)
    with pytest.raises(ValueError, match="attributes"):
        store.add_products([product(7, unit(rng, 1), attributes=value)])
    with pytest.raises(ValueError, match="attributes"):  # all or nothing: the good one stays out too
        store.add_products([product(8, unit(rng, 1)), product(9, unit(rng, 1), attributes=value)])
    with pytest.raises(ValueError, match="attributes"):
        store.update_product(kept[0].id, {"attributes": value, "title": "changed"})
    assert _state(store) == before
    _filters_work(store)


def test_sqlite_before_3_42_is_why(tmp_path: Path) -> None:
    """The failure these checks prevent, shown on this machine's SQLite (skipped on 3.42+, which
    reads NaN as JSON5)."""
    if sqlite3.sqlite_version_info >= (3, 42):
        pytest.skip(f"SQLite {sqlite3.sqlite_version} reads NaN")
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE p (attributes TEXT)")
    db.executemany(
        "INSERT INTO p VALUES (?)", [(json.dumps({"colour": "red"}),), (json.dumps({"x": math.nan}),)]
    )
    with pytest.raises(sqlite3.OperationalError, match="malformed JSON"):
        db.execute("SELECT count(*) FROM p, json_each(p.attributes) WHERE key = 'colour'").fetchall()


def _write_csv(root: Path, attributes: list[str], price: str = "1.5") -> Path:
    (root / "img").mkdir(parents=True, exist_ok=True)
    rows = []
    for i, text in enumerate(attributes):
        (root / "img" / f"{i}.png").write_bytes(image_bytes(i, "PNG"))
        rows.append(
            {"sku": f"P{i}", "title": "t", "price": price, "image_path": f"img/{i}.png", "attributes": text}
        )
    path = root / "catalog.csv"
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.mark.parametrize(
    "text",
    ['{"size": NaN}', '{"w": Infinity}', '{"w": 1e999}', "[" * 50_000, json.dumps({"n": "x" * 20_000})],
)
def test_a_csv_catalog_with_bad_attributes_names_the_line(tmp_path: Path, text: str) -> None:
    path = _write_csv(tmp_path / "cat", ['{"colour": "red"}', text])
    with pytest.raises(ValueError, match=r"catalog\.csv:3: attributes") as refused:
        read_catalog(path)
    assert len(str(refused.value)) < 300 + len(str(path))


def test_an_infinite_price_is_refused(tmp_path: Path) -> None:
    path = _write_csv(tmp_path / "cat", ['{"colour": "red"}'], price="inf")
    with pytest.raises(ValueError, match="catalog.csv:2: price"):
        read_catalog(path)


def test_a_parquet_catalog_with_nan_in_a_struct_is_refused(tmp_path: Path) -> None:
    rows = [
        {"sku": "A", "title": "t", "image_path": "a.jpg", "attributes": {"size": 38.0}},
        {"sku": "B", "title": "t", "image_path": "b.jpg", "attributes": {"size": math.nan}},
    ]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "catalog.parquet")
    with pytest.raises(ValueError, match=r"catalog\.parquet row 2: attributes"):
        read_catalog(tmp_path / "catalog.parquet")


def test_a_build_from_a_bad_catalog_stores_nothing(tiny_encoder_path: Path, tmp_path: Path) -> None:
    path = _write_csv(tmp_path / "cat", ['{"colour": "red"}', '{"size": NaN}'])
    with pytest.raises(ValueError, match="NaN"):
        build_store(path, tiny_encoder_path, tmp_path / "store")
    database = tmp_path / "store" / ProductStore.DB_NAME
    if database.exists():  # the build opens its store before it reads the catalog
        assert sqlite3.connect(database).execute("SELECT count(*) FROM products").fetchone() == (0,)
