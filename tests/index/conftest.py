"""What the store tests share: a small embedding size, one encoder fingerprint, unit vectors,
a product with real image bytes, and an empty store in a temporary directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from index import NewProduct, ProductStore
from tests.conftest import image_bytes

DIM = 16
FP = "f" * 64


def unit(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, DIM) float32 random unit rows."""
    x = rng.normal(size=(n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def product(i: int, vectors: np.ndarray, **kw: Any) -> NewProduct:
    """Product ``SKU-i`` with one image (bytes seeded ``10 * i + j``) per row of ``vectors``."""
    images = tuple(image_bytes(i * 10 + j) for j in range(len(vectors)))
    return NewProduct(
        f"SKU-{i}",
        f"Product {i}",
        kw.get("category", "cat"),
        kw.get("price", 9.5),
        kw.get("attributes", {"colour": "red"}),
        images,
        vectors,
    )


@pytest.fixture()
def store(tmp_path: Path) -> Iterator[ProductStore]:
    """An empty store for the ``FP`` encoder of ``DIM``-d embeddings."""
    with ProductStore(tmp_path / "store", FP, DIM) as s:
        yield s
