"""Child process of the crash test: adds (and now and then removes) products until it is killed.

    python -m tests.index.crash_writer STORE_DIR FIRST_INDEX FORCE_TOMBSTONES

Prints ``ready``, then ``added SKU`` after each add returned and ``removed SKU`` after each
removal returned, flushing every line: what the parent reads is exactly what was acknowledged.
"""

from __future__ import annotations

import sys

import numpy as np

from encoder.local_features import LocalFeatures
from index import NewProduct, ProductStore
from index.local.codebook import Codebook

DIM = 16
KEYPOINTS = 60
FINGERPRINT = "c" * 64


def vector_of(i: int) -> np.ndarray:
    """The (1, DIM) unit embedding of product ``i``, the same in every process."""
    v = np.random.default_rng(i).normal(size=(1, DIM)).astype(np.float32)
    return v / np.linalg.norm(v)


def features_of(i: int) -> LocalFeatures:
    """Product ``i``'s local features (random, the same in every process): its photo's evidence
    for the local index, which must follow the writes as the vectors do."""
    rng = np.random.default_rng(10_000 + i)
    keypoints = rng.uniform(0, 400, (KEYPOINTS, 2)).astype(np.float32)
    return LocalFeatures(keypoints, rng.integers(0, 256, (KEYPOINTS, 128), dtype=np.uint8))


def codebook() -> Codebook:
    descriptors = np.random.default_rng(7).integers(0, 256, (4000, 128), dtype=np.uint8)
    return Codebook.train(descriptors, 256, iterations=4)


def image_of(i: int) -> bytes:
    return b"\x89PNG\r\n\x1a\n" + i.to_bytes(8, "little") * 64  # distinct bytes per product


def main(directory: str, first: int, force_tombstones: bool) -> None:
    store = ProductStore(
        directory,
        FINGERPRINT,
        DIM,
        snapshot_every=3,
        force_tombstones=force_tombstones,
        duplicate_policy="off",
    )
    if not store.local.ready:
        store.set_codebook(codebook())
    print("ready", flush=True)
    i = first
    while True:
        store.add_products(
            [
                NewProduct(
                    f"P{i}", f"Product {i}", "c", 1.0, {}, (image_of(i),), vector_of(i), (features_of(i),)
                )
            ]
        )
        print(f"added P{i}", flush=True)
        if i % 4 == 3:
            victim = store.get_by_sku(f"P{i - 2}")
            if victim is not None and store.remove_product(victim.id):
                print(f"removed P{i - 2}", flush=True)
        i += 1


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1")
