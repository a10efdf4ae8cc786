"""What a write must satisfy before anything of it is written: fields, embeddings, features.

Checked up front, so a refused write leaves no file, row or vector behind; the messages name
what is wrong for the caller (the API turns these ``ValueError`` into 422 answers).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from encoder.attributes import attributes_json
from encoder.local_features import LocalFeatures
from index.records import DuplicateSkuError, NewProduct

UPDATABLE = ("sku", "title", "category", "price", "attributes")


def checked_embeddings(images: Sequence[bytes], embeddings: np.ndarray | None, dim: int) -> np.ndarray:
    """``embeddings`` as (len(images), dim) float32 unit rows; ``ValueError`` otherwise."""
    if not images:
        raise ValueError("at least one image is needed")
    emb = np.ascontiguousarray(embeddings, dtype=np.float32)
    if emb.shape != (len(images), dim):
        raise ValueError(f"expected embeddings of shape ({len(images)}, {dim}), got {emb.shape}")
    norms = np.linalg.norm(emb, axis=1)
    if not np.all(np.isfinite(emb)) or not np.allclose(norms, 1.0, atol=1e-3):
        raise ValueError("embeddings must be finite and L2-normalised")
    return emb


def check_features(images: Sequence[bytes], features: Sequence[LocalFeatures | None] | None) -> None:
    if features is not None and len(features) != len(images):
        raise ValueError(f"expected local features for {len(images)} images, got {len(features)}")


def checked_products(products: Sequence[NewProduct], dim: int) -> list[np.ndarray]:
    """Each product's embeddings (n_i, dim), after checking every field of every product;
    ``DuplicateSkuError`` when a sku repeats within ``products``."""
    for p in products:
        if not p.sku or not p.title:
            raise ValueError("a product needs a non-empty sku and title")
        attributes_json(p.attributes)  # InvalidAttributes, a ValueError: before anything is written
    vectors = [checked_embeddings(p.images, p.embeddings, dim) for p in products]
    for p in products:
        check_features(p.images, p.features)
    skus = [p.sku for p in products]
    if len(set(skus)) != len(skus):
        raise DuplicateSkuError(next(s for s in skus if skus.count(s) > 1))
    return vectors


def checked_changes(changes: dict[str, Any]) -> dict[str, Any]:
    """The column values of a metadata update (``UPDATABLE`` keys, attributes as JSON text)."""
    unknown = set(changes) - set(UPDATABLE)
    if unknown:
        raise ValueError(f"cannot update {sorted(unknown)}; updatable: {', '.join(UPDATABLE)}")
    for key in ("sku", "title"):
        if key in changes and not changes[key]:
            raise ValueError(f"{key} cannot be empty")
    return {k: attributes_json(v) if k == "attributes" else v for k, v in changes.items()}
