"""The catalog: product store (SQLite, source of truth) + vector index (FAISS, rebuildable)."""

from index.catalog import CatalogItem, read_catalog
from index.records import (
    DuplicateSkuError,
    EncoderMismatchError,
    NewProduct,
    Product,
    ProductImage,
    SearchHit,
    StoreError,
)
from index.store import ProductStore

__all__ = [
    "CatalogItem",
    "DuplicateSkuError",
    "EncoderMismatchError",
    "NewProduct",
    "Product",
    "ProductImage",
    "ProductStore",
    "SearchHit",
    "StoreError",
    "read_catalog",
]
