"""The catalog: product store (SQLite, source of truth) + vector index (FAISS, rebuildable)."""

from index.db import QueryTimeout
from index.filters import SearchFilter
from index.records import (
    AddResult,
    DuplicateSkuError,
    EncoderMismatchError,
    LastImageError,
    NearDuplicate,
    NearDuplicateError,
    NewProduct,
    Product,
    ProductImage,
    SchemaVersionError,
    SearchHit,
    StoreError,
    TextHit,
)
from index.store import ProductStore
from index.text_query import TextQueryError

__all__ = [
    "AddResult",
    "DuplicateSkuError",
    "EncoderMismatchError",
    "LastImageError",
    "NearDuplicate",
    "NearDuplicateError",
    "NewProduct",
    "Product",
    "ProductImage",
    "ProductStore",
    "QueryTimeout",
    "SchemaVersionError",
    "SearchFilter",
    "SearchHit",
    "StoreError",
    "TextHit",
    "TextQueryError",
]
