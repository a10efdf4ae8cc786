"""Index types: validation, the `auto` choice, memory estimates and tuning to a recall target."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from index.vectors import ann


def test_type_strings_are_validated_and_pq_gets_a_refine_stage() -> None:
    assert ann.normalise_type(" IVF64, PQ8 ") == "IVF64,PQ8,RFlat"
    assert ann.normalise_type("IVF64,PQ8,Refine(SQ8)") == "IVF64,PQ8,Refine(SQ8)"
    assert ann.normalise_type("HNSW32") == "HNSW32"
    for bad in ("auto", "IVF,Flat", "LSH", "Flat; DROP", "IVF64,PQ8,RFlat,RFlat"):
        with pytest.raises(ValueError, match="unknown index type"):
            ann.normalise_type(bad)


def test_auto_goes_from_exact_to_ivf_to_compressed_as_size_and_memory_demand() -> None:
    assert ann.choose_index_type(50_000, 512, 4 << 30) == "Flat"
    assert ann.choose_index_type(1_000_000, 128, 4 << 30) == "IVF2048,Flat"
    assert ann.choose_index_type(1_000_000, 512, 1 << 30) == "IVF2048,PQ128,Refine(SQ8)"
    with pytest.raises(ValueError, match="raise the memory budget"):
        ann.choose_index_type(10_000_000, 512, 100 << 20)
    assert ann.ivf_lists(1000) == 16 and ann.ivf_lists(10**9) == 65536


def test_memory_estimates_match_the_serialised_index() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5000, 32)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    for index_type in ("Flat", "HNSW16", "IVF32,Flat", "IVF32,PQ8"):
        index = ann.new_index(index_type, 32)
        ann.train(index, x)
        index.add_with_ids(x, np.arange(5000, dtype=np.int64))
        size = faiss.serialize_index(index).size
        assert ann.estimate_bytes(index_type, 5000, 32) == pytest.approx(size, rel=0.15), index_type


def test_tuning_reaches_the_target_and_training_needs_enough_vectors() -> None:
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(50, 32)).astype(np.float32)
    x = centres[rng.integers(0, 50, 4000)] + 0.3 * rng.normal(size=(4000, 32)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    ids = np.arange(4000, dtype=np.int64) * 3
    truth = ids[ann.exact_neighbours(x, x[:200], 10)]
    for index_type, knob in (("HNSW32", "efSearch"), ("IVF64,Flat", "nprobe"), ("IVF64,PQ8", "k_factor")):
        index = ann.new_index(index_type, 32)
        ann.train(index, x)
        index.add_with_ids(x, ids)
        tuning = ann.tune(index, x[:200], truth)
        assert tuning.recall >= ann.RECALL_TARGET and knob in tuning.knobs, index_type
    with pytest.raises(ValueError, match="IVF lists"):
        ann.train(ann.new_index("IVF64,Flat", 32), x[:10])
    with pytest.raises(ValueError, match="256 vectors"):
        ann.train(ann.new_index("IVF4,PQ8", 32), x[:100])
