"""The records the product store hands out, and the errors it raises."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from encoder.local_features import LocalFeatures


@dataclass(frozen=True)
class ProductImage:
    id: int
    content_hash: str
    path: str  # relative to the store directory


@dataclass(frozen=True)
class Product:
    id: int
    sku: str
    title: str
    category: str | None
    price: float | None
    attributes: dict[str, Any]
    created_at: str
    updated_at: str
    images: tuple[ProductImage, ...] = ()


@dataclass(frozen=True)
class NewProduct:
    """A product to add, with its images' bytes and embeddings (one (D,) vector per image)."""

    sku: str
    title: str
    category: str | None = None
    price: float | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    images: tuple[bytes, ...] = ()
    embeddings: np.ndarray | None = None  # (len(images), D) float32, L2-normalised
    # one per image for the geometric re-ranking (index.features.features_of); None: not kept
    features: tuple[LocalFeatures | None, ...] | None = None


@dataclass(frozen=True)
class SearchHit:
    product: Product
    score: float  # cosine similarity of the best-matching image
    image_id: int  # which image of the product matched
    inliers: int | None = None  # geometric re-ranking: RANSAC inliers of that image; None: not checked
    verified: bool = False  # the inliers reached the minimum: a geometric match, moved to the top


@dataclass(frozen=True)
class TextHit:
    product: Product
    score: float  # bm25 relevance, higher is better


@dataclass(frozen=True)
class NearDuplicate:
    """A new image (``image_index`` of product ``sku``) nearly equal to an existing image."""

    sku: str
    image_index: int
    other_product_id: int | None  # None: another product of the same add
    other_sku: str
    other_image_id: int | None
    score: float  # cosine similarity


@dataclass(frozen=True)
class AddResult:
    products: list[Product]
    near_duplicates: list[NearDuplicate]


class StoreError(Exception):
    """Base class of the store's errors."""


class DuplicateSkuError(StoreError):
    def __init__(self, sku: str) -> None:
        super().__init__(f"a product with sku {sku!r} already exists")
        self.sku = sku


class TooManyImagesError(StoreError):
    """Refused: the product would hold more images than the caller's cap."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"a product holds at most {limit} images")
        self.limit = limit


class LastImageError(StoreError):
    """Refused: a product keeps at least one image; delete the product instead."""

    def __init__(self, product_id: int) -> None:
        super().__init__(f"product {product_id} keeps at least one image; delete the product instead")
        self.product_id = product_id


class SchemaVersionError(StoreError):
    """The store was written by a newer version of lookalike, whose schema this one does not know."""


class EncoderMismatchError(StoreError):
    """Embeddings from another encoder cannot share an index with this store's."""


class NearDuplicateError(StoreError):
    """Refused: images nearly equal to stored ones (duplicate policy ``refuse``)."""

    def __init__(self, duplicates: list[NearDuplicate]) -> None:
        first = duplicates[0]
        super().__init__(
            f"image {first.image_index} of {first.sku!r} nearly equals an image of product "
            f"{first.other_sku!r} (cosine {first.score:.3f})"
            + (f" and {len(duplicates) - 1} more" if len(duplicates) > 1 else "")
        )
        self.duplicates = duplicates
