"""The catalog: product store (SQLite, source of truth) + vector index (FAISS, rebuildable)."""

from index.catalog import CatalogItem, read_catalog
from index.filters import SearchFilter
from index.records import (
    AddResult,
    DuplicateSkuError,
    EncoderMismatchError,
    NearDuplicate,
    NearDuplicateError,
    NewProduct,
    Product,
    ProductImage,
    SearchHit,
    StoreError,
    TextHit,
)
from index.store import ProductStore

__all__ = [
    "AddResult",
    "CatalogItem",
    "DuplicateSkuError",
    "EncoderMismatchError",
    "NearDuplicate",
    "NearDuplicateError",
    "NewProduct",
    "Product",
    "ProductImage",
    "ProductStore",
    "SearchFilter",
    "SearchHit",
    "StoreError",
    "TextHit",
    "read_catalog",
]
