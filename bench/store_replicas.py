"""The product store on SQLite vs PostgreSQL, and what following another replica costs.

    .venv/bin/python bench/store_replicas.py --dim 1280 --products 2000
    .venv/bin/python bench/store_replicas.py --database-url postgresql://user@host/db   # an empty database

Without ``--database-url`` a throwaway local PostgreSQL server is started (the test suite's,
fsync off: durability costs are not measured). Prints, for each backend, the median latency of
adding one product (one photo) and of a photo search (k=10, FAISS Flat + the SQL that loads the
hits), then for PostgreSQL: how fast a second replica applies ``--products`` changes made by
the first (``sync()``), and what an idle ``sync()`` (nothing new) costs.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from index import NewProduct, ProductStore

FINGERPRINT = "b" * 64


def unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    x = rng.normal(size=(n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def new_product(i: int, vector: np.ndarray) -> NewProduct:
    photo = b"\x89PNG\r\n\x1a\n" + i.to_bytes(8, "little") * 512  # 4 kB, distinct per product
    return NewProduct(f"P{i}", f"Product {i}", "c", 1.0, {"colour": "red"}, (photo,), vector[None])


def median_ms(samples: list[float]) -> float:
    return float(np.median(samples)) * 1000


def measure(store: ProductStore, dim: int, products: int, rng: np.random.Generator) -> tuple[float, float]:
    """(median ms per single-product add, median ms per photo search) on ``store``."""
    vectors = unit(rng, products, dim)
    adds = []
    for i in range(products):
        started = time.perf_counter()
        store.add_product(new_product(i, vectors[i]))
        adds.append(time.perf_counter() - started)
    searches = []
    for q in unit(rng, 200, dim):
        started = time.perf_counter()
        store.search(q[None], k=10)
        searches.append(time.perf_counter() - started)
    return median_ms(adds), median_ms(searches)


@contextlib.contextmanager
def database(url: str | None) -> Iterator[str]:
    if url:
        yield url
        return
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository's tests/
    from tests.postgres import new_database, running_postgres

    with running_postgres() as server:
        yield new_database(server)


def main(args: argparse.Namespace) -> None:
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp, database(args.database_url) as url:
        with ProductStore(Path(tmp) / "sqlite", FINGERPRINT, args.dim, duplicate_policy="off") as store:
            add, search = measure(store, args.dim, args.products, rng)
        print(f"sqlite:     add {add:.2f} ms, search {search:.2f} ms (median, {args.products} products)")
        with (
            ProductStore(
                Path(tmp) / "a", FINGERPRINT, args.dim, duplicate_policy="off", database_url=url
            ) as a,
            ProductStore(Path(tmp) / "b", database_url=url) as b,
        ):
            add, search = measure(a, args.dim, args.products, rng)
            print(f"postgresql: add {add:.2f} ms, search {search:.2f} ms (median, {args.products} products)")
            started = time.perf_counter()
            applied = b.sync()
            seconds = time.perf_counter() - started
            print(f"replica catch-up: {applied} changes in {seconds:.2f} s ({applied / seconds:,.0f}/s)")
            idle = []
            for _ in range(200):
                started = time.perf_counter()
                b.sync()
                idle.append(time.perf_counter() - started)
            print(f"idle sync(): {median_ms(idle):.3f} ms (median of 200)")


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dim", type=int, default=1280, help="embedding size (the demo encoder's: 1280)")
    parser.add_argument("--products", type=int, default=2000)
    parser.add_argument(
        "--database-url", default=None, help="an empty PostgreSQL database (default: a local one)"
    )
    return parser


if __name__ == "__main__":
    main(get_args_parser().parse_args())
