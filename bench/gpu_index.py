"""GPU FAISS vs CPU FAISS through the store's own code: same answers, tombstones, and the times.

    python3 bench/gpu_index.py --n 1000000 --dim 512 --queries 1000     # on a machine with a GPU

Builds one exact (Flat) index over clustered synthetic unit vectors, wraps it in the store's
``VectorIndex`` twice (CPU, and GPU when ``faiss.get_num_gpus() > 0``, float32 and float16),
and checks: the GPU top-10 equals the CPU top-10 (float32: recall 1.0 up to ties; float16:
recall >= 0.99), removed ids are tombstoned on the GPU and never returned, and a ``ProductStore``
opened with ``use_gpu=True`` serves its vectors from the GPU and snapshots them back to the CPU.
Prints one JSON object per check and a Markdown table of per-query latency.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import faiss
import numpy as np

from index import NewProduct, ProductStore
from index.vectors import VectorIndex, ann, gpu_count


def clustered(n: int, dim: int, seed: int) -> np.ndarray:
    """(n, dim) unit vectors around 1,000 random centres: shaped like real embeddings."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((1000, dim), dtype=np.float32)
    x = centres[rng.integers(0, 1000, n)] + 0.6 * rng.standard_normal((n, dim), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def per_query_ms(vectors: VectorIndex, queries: np.ndarray, batch: int, k: int = 10) -> float:
    """Median time per query, searching in batches of ``batch`` (after a warm-up)."""
    vectors.search(queries[:batch], k)
    times = []
    for start in range(0, len(queries) - batch + 1, batch):
        t = time.perf_counter()
        vectors.search(queries[start : start + batch], k)
        times.append((time.perf_counter() - t) * 1000 / batch)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(json.dumps({"faiss": faiss.__version__, "gpus": gpu_count()}))
    base = clustered(args.n, args.dim, args.seed)
    queries = clustered(args.queries, args.dim, args.seed + 1)
    ids = np.arange(args.n, dtype=np.int64) * 7 + 1
    cpu_index = ann.new_index("Flat", args.dim)
    cpu_index.add_with_ids(base, ids)
    cpu = VectorIndex(cpu_index, "Flat")
    truth = cpu.search(queries, 10)[1]
    rows = [("cpu", cpu)]
    if gpu_count() > 0:
        for float16 in (False, True):
            gpu = VectorIndex(cpu_index, "Flat", use_gpu=True, float16=float16)
            assert gpu.on_gpu, "the Flat index should live on the GPU"
            recall = ann.recall_at_k(gpu.search(queries, 10)[1], truth)
            print(
                json.dumps({"check": "gpu top-10 vs cpu", "float16": float16, "recall@10": round(recall, 4)})
            )
            assert recall >= (0.99 if float16 else 0.999)
            rows.append((f"gpu{' fp16' if float16 else ''}", gpu))
        gpu = rows[1][1]
        victims = truth[:, 0][:50]
        gpu.remove(victims.tolist())
        found = gpu.search(queries[:50], 10)[1]
        assert not np.isin(found, victims).any() and len(gpu.tombstones) == len(set(victims.tolist()))
        print(json.dumps({"check": "gpu removals become tombstones, never returned", "ok": True}))
        with tempfile.TemporaryDirectory() as tmp:
            small = base[:2000]
            with ProductStore(tmp, "g" * 64, args.dim, use_gpu=True, duplicate_policy="off") as store:
                store.add_products(
                    [
                        NewProduct(f"P{i}", "p", None, None, {}, (b"x%d" % i,), small[i : i + 1])
                        for i in range(2000)
                    ]
                )
                first = store.get_by_sku("P0")
                assert store.index_device == "gpu" and first is not None
                store.remove_product(first.id)
                assert store.search(small[:1], k=1)[0][0].product.sku != "P0"
            with ProductStore(tmp, use_gpu=False) as reopened:
                assert (
                    reopened.vector_count() == 1999
                    and reopened.search(small[1:2], k=1)[0][0].product.sku == "P1"
                )
            print(json.dumps({"check": "store on gpu: delete, snapshot, reopen on cpu", "ok": True}))
    print(f"\n{args.n:,} x {args.dim}-d, exact search (Flat), k=10, median ms per query\n")
    print("| index | batch 1 | batch 64 | batch 1024 |")
    print("|---|---|---|---|")
    for name, vectors in rows:
        single = per_query_ms(vectors, queries[:100], 1)
        print(
            f"| {name} | {single:.3f} | {per_query_ms(vectors, queries, 64):.4f} | "
            f"{per_query_ms(vectors, queries, min(1024, len(queries))):.4f} |"
        )


if __name__ == "__main__":
    main()
