"""Reading a product catalog: a folder of photos per category, or a CSV."""

from __future__ import annotations

import csv
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from encoder import list_image_files
from index.attributes import check_attributes, parse_attributes


@dataclass(frozen=True)
class CatalogItem:
    sku: str
    title: str
    category: str | None
    price: float | None
    image_paths: tuple[Path, ...]
    attributes: dict[str, Any] = field(default_factory=dict)


def read_catalog(source: str | Path) -> list[CatalogItem]:
    """Catalog items from a folder or a CSV.

    Folder: ``<category>/<sku>.<ext>``: one product per image, sku = file name without suffix
    (qualified by the category when two categories share a name), title = the sku.
    CSV: columns ``sku, title, category, price, image_path``; more image columns may follow
    (any column whose name starts with ``image_path``), an optional ``attributes`` column holds
    a JSON object (within the limits of ``index.attributes``: no NaN or infinity). Paths are
    relative to the CSV's folder.
    Parquet (needs pyarrow): the same columns, typed; an image column may also hold a list of
    paths, and ``attributes`` a JSON string or a struct/map. Duplicate skus raise ``ValueError``.
    """
    source = Path(source)
    suffix = source.suffix.lower()
    if source.is_dir():
        items = _from_folder(source)
    elif source.is_file() and suffix == ".csv":
        items = _from_csv(source)
    elif source.is_file() and suffix in (".parquet", ".pq"):
        items = _from_parquet(source)
    else:
        raise ValueError(f"{source} is neither a catalog folder nor a .csv or .parquet file")
    duplicates = [sku for sku, n in Counter(i.sku for i in items).items() if n > 1]
    if duplicates:
        raise ValueError(f"{source}: duplicate skus {sorted(duplicates)[:10]}")
    return items


def _from_folder(root: Path) -> list[CatalogItem]:
    files = list_image_files(root)
    stem_counts = Counter(p.stem for p in files)
    items = []
    for path in files:
        category = path.parent.name if path.parent != root else None
        sku = path.stem if stem_counts[path.stem] == 1 else f"{category}/{path.stem}"
        items.append(CatalogItem(sku, sku, category, None, (path,)))
    return items


def _from_csv(path: Path) -> list[CatalogItem]:
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        image_columns = _image_columns(path, reader.fieldnames or [])
        return [_item(path, line, row, image_columns) for line, row in enumerate(reader, start=2)]


def _from_parquet(path: Path) -> list[CatalogItem]:
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise ValueError(f"{path}: reading a Parquet catalog needs pyarrow (pip install pyarrow)") from exc
    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow's errors for a damaged or foreign file: say which file
        raise ValueError(f"{path} is not a readable Parquet file: {exc}") from exc
    image_columns = _image_columns(path, table.column_names)
    return [_item(path, n + 1, row, image_columns) for n, row in enumerate(table.to_pylist())]


def _image_columns(path: Path, columns: Sequence[str]) -> list[str]:
    image_columns = [c for c in columns if c.startswith("image_path")]
    if {"sku", "title"} - set(columns) or not image_columns:
        raise ValueError(
            f"{path}: a catalog needs columns sku, title, category, price, image_path; has {list(columns)}"
        )
    return image_columns


def _item(path: Path, line: int, row: dict[str, Any], image_columns: list[str]) -> CatalogItem:
    """One catalog row (CSV: strings; Parquet: typed values) -> item; ``ValueError`` naming the row."""
    where = f"{path}:{line}" if path.suffix.lower() == ".csv" else f"{path} row {line}"
    try:
        price = row.get("price")
        price = float(price) if price not in (None, "") else None
        if price is not None and math.isnan(price):  # pandas writes a missing number as NaN
            price = None
        if price is not None and math.isinf(price):
            raise ValueError(f"price must be a finite number, not {price}")
        attributes = row.get("attributes") or {}
        if isinstance(attributes, list) and all(isinstance(p, tuple) for p in attributes):
            attributes = dict(attributes)  # a Parquet map column arrives as (key, value) pairs
        if isinstance(attributes, str):
            attributes = parse_attributes(attributes)
        else:
            attributes = check_attributes(attributes)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: {exc}") from exc
    images = tuple(
        path.parent / value
        for c in image_columns
        for value in (row[c] if isinstance(row.get(c), list) else [row.get(c)])
        if value
    )
    if not row.get("sku") or not images:
        raise ValueError(f"{where}: every row needs a sku and at least one image path")
    return CatalogItem(
        str(row["sku"]),
        str(row.get("title") or row["sku"]),
        row.get("category") or None,
        price,
        images,
        attributes,
    )
