"""The GPU placement settings (float16, shards) on a machine without a GPU: the store keeps its
index on the CPU and serves as usual (faiss-cpu has no GPU cloner options to inspect)."""

from pathlib import Path

import numpy as np

from index import NewProduct, ProductStore
from index.vectors import gpu_count


def test_a_store_asked_to_shard_without_gpus_serves_from_the_cpu(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(6, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    with ProductStore(tmp_path / "s", "f" * 64, 8, gpu_shard=True, float16=True) as store:
        store.add_products(
            [NewProduct(f"S{i}", f"t{i}", None, None, {}, (b"%d" % i,), vectors[i : i + 1]) for i in range(6)]
        )
        assert store.gpu_shard is True
        assert store.index_device == ("gpu" if gpu_count() else "cpu")
        hits = store.search(vectors[2:3], 1)[0]
        assert hits[0].product.sku == "S2"
