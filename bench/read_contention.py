"""Photo-search latency while another thread loops a slow text query, on a large SQLite store.

    .venv/bin/python bench/read_contention.py --store /tmp/contention --products 200000

Makes the store once (rows inserted with SQL, random titles from a 20,000-word vocabulary,
random 16-d embeddings; FAISS Flat is built from them on open), then prints how long the slow
query takes alone (32 one-letter prefixes, run as raw SQL so it is just as slow with or without
the text-query limits), and the median and worst latency of 40 photo searches (k=10) alone and
while the slow query runs in a loop on another thread. With one read connection behind one
lock every search waited for the text query in progress; with a connection per reader it does
not.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import string
import threading
import time
from pathlib import Path

import numpy as np

from index import ProductStore

DIM = 16
FINGERPRINT = "c" * 64
SLOW_SQL = (
    "SELECT p.id, bm25(products_text) AS rank FROM products_text JOIN products p"
    " ON p.id = products_text.rowid WHERE products_text MATCH ? ORDER BY rank LIMIT 10"
)


def make_store(directory: Path, n: int) -> None:
    random.seed(0)
    rng = np.random.default_rng(0)
    ProductStore(directory, FINGERPRINT, DIM).close()
    vocab = ["".join(random.choices(string.ascii_lowercase, k=random.randint(3, 9))) for _ in range(20_000)]
    vectors = rng.normal(size=(n, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    now = "2026-01-01T00:00:00+00:00"
    with sqlite3.connect(directory / ProductStore.DB_NAME) as db:
        db.executemany(
            "INSERT INTO products (id, sku, title, category, price, attributes, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (i + 1, f"S{i}", " ".join(random.choices(vocab, k=6)), random.choice(vocab[:50]), 10.0,
                 f'{{"colour": "{random.choice(vocab[:30])}"}}', now, now)
                for i in range(n)
            ],
        )  # fmt: skip
        db.executemany(
            "INSERT INTO images (id, product_id, content_hash, path, embedding, fingerprint, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(i + 1, i + 1, "x", "images/x.jpg", vectors[i].tobytes(), FINGERPRINT, now) for i in range(n)],
        )


def latencies_ms(store: ProductStore, query: np.ndarray, count: int = 40) -> np.ndarray:
    out = []
    for _ in range(count):
        started = time.perf_counter()
        store.search(query, 10)
        out.append(time.perf_counter() - started)
    return np.array(out) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, required=True, help="made on the first run")
    parser.add_argument("--products", type=int, default=200_000)
    args = parser.parse_args()
    if not args.store.exists():
        make_store(args.store, args.products)
    rng = random.Random(1)
    slow_match = " ".join(f'"{rng.choice(string.ascii_lowercase)}"*' for _ in range(32))
    query = np.random.default_rng(1).normal(size=(1, DIM)).astype(np.float32)
    query /= np.linalg.norm(query)
    with ProductStore(args.store) as store:
        started = time.perf_counter()
        store.db.query(SLOW_SQL, (slow_match,))
        slow_ms = (time.perf_counter() - started) * 1000
        alone = latencies_ms(store, query)
        stop, runs = threading.Event(), [0]

        def text_loop() -> None:
            while not stop.is_set():
                store.db.query(SLOW_SQL, (slow_match,))
                runs[0] += 1

        thread = threading.Thread(target=text_loop)
        thread.start()
        time.sleep(0.2)
        busy = latencies_ms(store, query)
        stop.set()
        thread.join()
        print(f"{store.count():,} products; the slow text query alone: {slow_ms:.0f} ms")
    print(f"photo search alone: median {np.median(alone):.1f} ms, worst {alone.max():.1f} ms")
    print(
        f"photo search while the text query loops ({runs[0]} runs): median {np.median(busy):.1f} ms, "
        f"worst {busy.max():.1f} ms"
    )


if __name__ == "__main__":
    main()
