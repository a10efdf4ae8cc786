"""The one catalog reader: a folder of photos per category, a CSV or a Parquet file.

Two views of one source, read by the same rules: ``read_catalog`` gives products (what
``lookalike build`` stores), ``read_image_list`` gives every photo with a label (what training
and evaluation learn from and measure on). In a CSV or Parquet file every column whose name
starts with ``image_path`` holds photos (a Parquet cell may hold a list of them), relative to
the file's folder.
"""

from __future__ import annotations

import csv
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from encoder.attributes import check_attributes, parse_attributes
from encoder.images import list_image_files

IMAGE_COLUMN = "image_path"  # the prefix of every photo column


@dataclass(frozen=True)
class CatalogItem:
    sku: str
    title: str
    category: str | None
    price: float | None
    image_paths: tuple[Path, ...]
    attributes: dict[str, Any] = field(default_factory=dict)


def read_catalog(source: str | Path) -> list[CatalogItem]:
    """Catalog items (products) from a folder, a CSV or a Parquet file.

    Folder: ``<category>/<sku>.<ext>``: one product per image, sku = file name without suffix
    (qualified by the category when two categories share a name), title = the sku.
    CSV: columns ``sku, title, category, price, image_path``; more image columns may follow
    (any column whose name starts with ``image_path``), an optional ``attributes`` column holds
    a JSON object (within the limits of ``encoder.attributes``: no NaN or infinity). Paths are
    relative to the CSV's folder.
    Parquet (needs pyarrow): the same columns, typed; an image column may also hold a list of
    paths, and ``attributes`` a JSON string or a struct/map. Duplicate skus raise ``ValueError``.
    """
    source = Path(source)
    if source.is_dir():
        items = _from_folder(source)
    else:
        table = _Table.read(source)
        if {"sku", "title"} - set(table.columns) or not table.image_columns:
            raise ValueError(
                f"{source}: a catalog needs columns sku, title, category, price, image_path; "
                f"has {table.columns}"
            )
        items = [_item(table, n, row) for n, row in enumerate(table.rows)]
    duplicates = [sku for sku, n in Counter(i.sku for i in items).items() if n > 1]
    if duplicates:
        raise ValueError(f"{source}: duplicate skus {sorted(duplicates)[:10]}")
    return items


def read_image_list(source: str | Path, label_column: str = "category") -> list[tuple[Path, str]]:
    """(image path, label) pairs: every photo of a folder, a CSV or a Parquet file, in order.

    Folder: every image below it; the label is the name of the image's parent folder.
    CSV or Parquet: every photo of every row (all ``image_path`` columns), labelled with the
    row's ``label_column`` (empty, or a missing column, is allowed for unlabeled training).
    Rows need no sku and may repeat one (many shopper photos of one product).
    """
    source = Path(source)
    if source.is_dir():
        return [(p, p.parent.name) for p in list_image_files(source)]
    table = _Table.read(source)
    if not table.image_columns:
        raise ValueError(f"{source}: a photo list needs an image_path column, has {table.columns}")
    pairs = []
    for n, row in enumerate(table.rows):
        images = table.images(row)
        if not images:
            raise ValueError(f"{table.where(n)}: every row needs at least one image path")
        label = row.get(label_column)
        pairs += [(p, "" if label is None else str(label)) for p in images]
    return pairs


@dataclass(frozen=True)
class _Table:
    """The rows of a CSV (strings) or a Parquet file (typed values), with their photo columns."""

    path: Path
    columns: list[str]
    rows: list[dict[str, Any]]

    @classmethod
    def read(cls, path: Path) -> _Table:
        suffix = path.suffix.lower()
        if path.is_file() and suffix == ".csv":
            with path.open(newline="", encoding="utf-8") as f:
                reader = csv.DictReader(f)
                rows = list(reader)
                return cls(path, list(reader.fieldnames or []), rows)
        if path.is_file() and suffix in (".parquet", ".pq"):
            return cls(path, *_parquet_rows(path))
        raise ValueError(f"{path} is neither a catalog folder nor a .csv or .parquet file")

    @property
    def image_columns(self) -> list[str]:
        return [c for c in self.columns if c.startswith(IMAGE_COLUMN)]

    def where(self, n: int) -> str:
        """Row ``n`` (0-based) for a message: the CSV's line (after the header) or the Parquet row."""
        return f"{self.path}:{n + 2}" if self.path.suffix.lower() == ".csv" else f"{self.path} row {n + 1}"

    def images(self, row: dict[str, Any]) -> tuple[Path, ...]:
        """The row's photos, every photo column in order; empty cells are skipped."""
        return tuple(
            self.path.parent / value
            for c in self.image_columns
            for value in (row[c] if isinstance(row.get(c), list) else [row.get(c)])
            if value
        )


def _parquet_rows(path: Path) -> tuple[list[str], list[dict[str, Any]]]:
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise ValueError(f"{path}: reading a Parquet catalog needs pyarrow (pip install pyarrow)") from exc
    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow's errors for a damaged or foreign file: say which file
        raise ValueError(f"{path} is not a readable Parquet file: {exc}") from exc
    return table.column_names, table.to_pylist()


def _from_folder(root: Path) -> list[CatalogItem]:
    files = list_image_files(root)
    stem_counts = Counter(p.stem for p in files)
    items = []
    for path in files:
        category = path.parent.name if path.parent != root else None
        sku = path.stem if stem_counts[path.stem] == 1 else f"{category}/{path.stem}"
        items.append(CatalogItem(sku, sku, category, None, (path,)))
    return items


def _item(table: _Table, n: int, row: dict[str, Any]) -> CatalogItem:
    """One catalog row -> item; ``ValueError`` naming the row."""
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
        raise ValueError(f"{table.where(n)}: {exc}") from exc
    images = table.images(row)
    if not row.get("sku") or not images:
        raise ValueError(f"{table.where(n)}: every row needs a sku and at least one image path")
    return CatalogItem(
        str(row["sku"]),
        str(row.get("title") or row["sku"]),
        row.get("category") or None,
        price,
        images,
        attributes,
    )
