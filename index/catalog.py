"""Reading a product catalog: a folder of photos per category, or a CSV."""

from __future__ import annotations

import csv
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from encoder import list_image_files


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
    a JSON object. Paths are relative to the CSV's folder. Duplicate skus raise ``ValueError``.
    """
    source = Path(source)
    if source.is_dir():
        items = _from_folder(source)
    elif source.is_file() and source.suffix.lower() == ".csv":
        items = _from_csv(source)
    else:
        raise ValueError(f"{source} is neither a catalog folder nor a .csv file")
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
        columns = reader.fieldnames or []
        image_columns = [c for c in columns if c.startswith("image_path")]
        missing = {"sku", "title"} - set(columns)
        if missing or not image_columns:
            raise ValueError(
                f"{path}: a catalog CSV needs columns sku, title, category, price, image_path; has {columns}"
            )
        items = []
        for line, row in enumerate(reader, start=2):
            try:
                price = float(row["price"]) if row.get("price") else None
                attributes = json.loads(row["attributes"]) if row.get("attributes") else {}
            except ValueError as exc:
                raise ValueError(f"{path}:{line}: {exc}") from exc
            images = tuple(path.parent / row[c] for c in image_columns if row.get(c))
            if not row.get("sku") or not images:
                raise ValueError(f"{path}:{line}: every row needs a sku and at least one image path")
            items.append(
                CatalogItem(
                    row["sku"],
                    row["title"] or row["sku"],
                    row.get("category") or None,
                    price,
                    images,
                    attributes,
                )
            )
    return items
