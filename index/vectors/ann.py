"""Choosing, building and tuning the FAISS index type (exact or approximate nearest neighbours).

Index types are FAISS factory strings over inner product (= cosine on unit vectors):
``Flat`` (exact), ``HNSW{M}``, ``IVF{n},Flat``, ``IVF{n},PQ{m}`` (a refine stage re-ranks PQ
candidates: ``RFlat`` or ``Refine(SQ8)``; one is added when missing). ``auto`` picks one from the
vector count and a memory budget, the way autofaiss does, in the order the benchmarks support.
Every index is wrapped in ``IndexIDMap2``, so FAISS ids are image ids whatever the type.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import faiss
import numpy as np

_faiss: Any = faiss  # FAISS's type stubs lag behind its Python API (search parameters, kwargs)

RECALL_TARGET = 0.95  # recall@10 vs exact search the search-time knobs are tuned to reach
EXACT_UP_TO = 100_000  # below this many vectors exact search is fast enough and costs no recall
TRAIN_POINTS_PER_LIST = 64  # k-means training sample per IVF list (FAISS wants >= 39)

_TYPE = re.compile(
    r"^(?:Flat|HNSW(?P<hnsw>\d+)|IVF(?P<nlist>\d+),(?:Flat|PQ(?P<m>\d+)(?:x8)?(?P<refine>,RFlat|,Refine\(SQ8\))?))$"
)


@dataclass(frozen=True)
class Tuning:
    """The search-time knobs chosen for an index and the recall@k it reached on the sample."""

    knobs: dict[str, int]  # efSearch (HNSW), nprobe (IVF), k_factor (refine); empty when exact
    recall: float


def normalise_type(index_type: str) -> str:
    """Validate a factory string; add the refine stage a bare ``IVF{n},PQ{m}`` needs."""
    index_type = index_type.strip().replace(" ", "")
    match = _TYPE.match(index_type)
    if match is None:
        raise ValueError(
            f"unknown index type {index_type!r}; use auto, Flat, HNSW32, IVF1024,Flat or IVF1024,PQ16"
        )
    if match["m"] and not match["refine"]:
        index_type += ",RFlat"
    return index_type


def estimate_bytes(index_type: str, n: int, dim: int) -> int:
    """Approximate resident memory of ``n`` vectors of ``dim`` in an index of ``index_type``."""
    match = _TYPE.match(normalise_type(index_type))
    assert match is not None
    ids = 16 * n  # IDMap2: the id array and its reverse map
    if match["hnsw"]:
        return n * (4 * dim + 8 * int(match["hnsw"]) + 8) + ids
    if match["nlist"] and match["m"]:
        refine = 4 * dim if match["refine"] == ",RFlat" else dim
        return n * (int(match["m"]) + refine + 8) + ids
    return n * (4 * dim + (8 if match["nlist"] else 0)) + ids


def choose_index_type(n: int, dim: int, memory_budget_bytes: int) -> str:
    """``auto``: exact up to ``EXACT_UP_TO`` vectors, then IVF-Flat, then IVF-PQ with an SQ8 refine
    stage when memory is short. HNSW is left to those who ask for it: at 1M vectors it was slower,
    larger and slower to build than IVF-Flat at the same recall (docs/BENCHMARKS.md)."""
    nlist = ivf_lists(n)
    m = next(m for m in (dim // 4, dim // 8, dim // 16, 8, 4, 2, 1) if m >= 1 and dim % m == 0)
    candidates = ["Flat"] if n <= EXACT_UP_TO else []
    candidates += [f"IVF{nlist},Flat", f"IVF{nlist},PQ{m},Refine(SQ8)"]
    for candidate in candidates:
        if estimate_bytes(candidate, n, dim) <= memory_budget_bytes:
            return candidate
    need = estimate_bytes(candidates[-1], n, dim) / 2**20
    raise ValueError(
        f"no index type fits {n:,} x {dim}-d vectors in {memory_budget_bytes / 2**20:.0f} MiB "
        f"(the smallest needs {need:.0f} MiB); raise the memory budget"
    )


def ivf_lists(n: int) -> int:
    """About 4 * sqrt(n) inverted lists, a power of two, with enough vectors each to train."""
    nlist = 1 << max(4, int(np.log2(max(4 * np.sqrt(max(n, 1)), 1))))
    while nlist > 16 and n < 39 * nlist:
        nlist //= 2
    return min(nlist, 65536)


def new_index(index_type: str, dim: int) -> faiss.Index:
    """An empty, untrained ``IndexIDMap2`` of ``index_type`` over inner product.

    PQ codebooks skip FAISS's polysemous training (``np``): it costs seconds per rebuild and
    only serves Hamming-distance filtering, which these searches never use.
    """
    factory = re.sub(r"PQ(\d+(?:x8)?)", r"PQ\1np", normalise_type(index_type))
    return faiss.index_factory(dim, f"IDMap2,{factory}", faiss.METRIC_INNER_PRODUCT)


def inner(index: faiss.Index) -> Any:
    """The index inside the id map, downcast to its concrete class."""
    return faiss.downcast_index(index.index) if isinstance(index, faiss.IndexIDMap2) else index


def ivf_of(index: faiss.Index) -> faiss.IndexIVF | None:
    core = inner(index)
    if isinstance(core, faiss.IndexRefine):
        core = faiss.downcast_index(core.base_index)
    return faiss.extract_index_ivf(core) if isinstance(core, faiss.IndexIVF) else None


def train(index: faiss.Index, vectors: np.ndarray, seed: int = 0) -> None:
    """Train quantizers (IVF, PQ) on a sample of ``vectors`` (N, D); a no-op for Flat and HNSW."""
    if index.is_trained:
        return
    ivf = ivf_of(index)
    nlist = ivf.nlist if ivf is not None else 1
    if len(vectors) < nlist:
        raise ValueError(f"an index with {nlist} IVF lists needs at least {nlist} vectors to train")
    if "PQ" in _base_class_name(index) and len(vectors) < 256:
        raise ValueError(f"a PQ index needs at least 256 vectors to train its codebooks, not {len(vectors)}")
    sample = min(len(vectors), max(nlist * TRAIN_POINTS_PER_LIST, 65_536))
    rows = np.random.default_rng(seed).choice(len(vectors), sample, replace=False)
    index.train(np.ascontiguousarray(vectors[np.sort(rows)], dtype=np.float32))


def _base_class_name(index: faiss.Index) -> str:
    """The class of the index a refine stage re-ranks, or of the index itself."""
    core = inner(index)
    base = faiss.downcast_index(core.base_index) if isinstance(core, faiss.IndexRefine) else core
    return type(base).__name__


def exact_neighbours(base: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """(M, k) row numbers of ``base`` (N, D) nearest to ``queries`` (M, D) by inner product."""
    flat = faiss.IndexFlatIP(base.shape[1])
    flat.add(np.ascontiguousarray(base, dtype=np.float32))
    return flat.search(np.ascontiguousarray(queries, dtype=np.float32), min(k, len(base)))[1]


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean fraction of each row of ``truth`` (M, k) found in the same row of ``found`` (M, >=k)."""
    if truth.size == 0:
        return 1.0
    hits = sum(len(set(f.tolist()) & set(t.tolist())) for f, t in zip(found, truth, strict=True))
    return hits / truth.size


def tune(
    index: faiss.Index, queries: np.ndarray, truth_ids: np.ndarray, k: int = 10, target: float = RECALL_TARGET
) -> Tuning:
    """Raise efSearch (HNSW) or nprobe (IVF), then the refine factor, until recall@k reaches ``target``.

    queries: (M, D); truth_ids: (M, k) ids of the exact neighbours. The chosen values stay set on
    the index (and so in its snapshot); the cheapest setting that reaches the target wins.
    """
    core, ivf = inner(index), ivf_of(index)
    refine = isinstance(core, faiss.IndexRefine)
    if isinstance(core, faiss.IndexHNSW):
        knob, values = "efSearch", [16, 32, 64, 128, 256, 512, 1024]
    elif ivf is not None:
        knob, values = "nprobe", [n for n in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512) if n <= ivf.nlist]
    else:
        return Tuning({}, recall_at_k(index.search(queries, k)[1], truth_ids))
    knobs: dict[str, int] = {}
    recall = 0.0
    for k_factor in (4, 8, 16, 32) if refine else (0,):
        if refine:
            knobs["k_factor"] = core.k_factor = k_factor
        for value in values:
            set_knob(index, knob, value)
            knobs[knob] = value
            recall = recall_at_k(index.search(queries, k)[1], truth_ids)
            if recall >= target:
                return Tuning(knobs, recall)
    return Tuning(knobs, recall)


def set_knob(index: faiss.Index, knob: str, value: int) -> None:
    if knob == "efSearch":
        inner(index).hnsw.efSearch = max(value, 1)
    elif knob == "nprobe":
        ivf = ivf_of(index)
        assert ivf is not None
        ivf.nprobe = value


def selector_parameters(index: faiss.Index, selector: faiss.IDSelector) -> faiss.SearchParameters | None:
    """Search parameters that restrict ``index`` to ``selector``'s ids, keeping the tuned knob;
    ``None`` when this index type cannot filter inside FAISS (refine stages)."""
    core = inner(index)
    if isinstance(core, faiss.IndexFlat):
        return _faiss.SearchParameters(sel=selector)
    if isinstance(core, faiss.IndexHNSW):
        return _faiss.SearchParametersHNSW(sel=selector, efSearch=core.hnsw.efSearch)
    if isinstance(core, faiss.IndexIVF):
        return _faiss.SearchParametersIVF(sel=selector, nprobe=core.nprobe)
    return None


def describe(index: faiss.Index) -> str:
    """A short human description: the concrete class inside the id map."""
    return type(inner(index)).__name__
