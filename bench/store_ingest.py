"""How fast the store takes products whose embeddings are already computed (the single writer of
`lookalike build`, with or without Ray).

    .venv/bin/python bench/store_ingest.py --dims 1280 128 --products 20000

Adds ``--products`` products (one photo each, a few bytes of photo, random unit embeddings) in
batches of ``--batch`` to a fresh SQLite store with a Flat index, and prints products/s.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from index import NewProduct, ProductStore


def ingest_rate(dim: int, products: int, batch: int, seed: int = 0) -> float:
    rng = np.random.default_rng(seed)
    with (
        tempfile.TemporaryDirectory() as tmp,
        ProductStore(Path(tmp) / "store", "f" * 64, dim, duplicate_policy="off") as store,
    ):
        started = time.perf_counter()
        for first in range(0, products, batch):
            vectors = rng.normal(size=(batch, dim)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            store.add_products(
                [
                    NewProduct(
                        f"P{first + i}",
                        f"product {first + i}",
                        "c",
                        1.0,
                        {},
                        (b"photo %d" % (first + i),),
                        vectors[i : i + 1],
                    )
                    for i in range(batch)
                ]
            )
        return products / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dims", type=int, nargs="+", default=[1280, 128])
    parser.add_argument("--products", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    for dim in args.dims:
        print(f"{dim}-d: {ingest_rate(dim, args.products, args.batch):.0f} products/s", flush=True)


if __name__ == "__main__":
    main()
