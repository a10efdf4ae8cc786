"""VectorIndex: one FAISS index keyed by image id, its GPU placement and its tombstones.

FAISS cannot remove ids from GPU indexes (faiss#1585) nor from HNSW or refine stages; there a
removed id becomes a *tombstone*: it stays in FAISS, searches drop it, and a rebuild compacts.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterable

import faiss
import numpy as np

from index.vectors import ann

log = logging.getLogger(__name__)


def gpu_count() -> int:
    """Number of GPUs FAISS can use (0 with faiss-cpu, or faiss-gpu on a machine without one)."""
    get = getattr(faiss, "get_num_gpus", None)
    return int(get()) if get else 0


class VectorIndex:
    """A FAISS index over image ids (cosine on unit vectors), on the GPU when asked and present.

    Not thread-safe: the store serialises writers and shares readers with a readers-writer lock.
    FAISS GPU indexes are not thread-safe even for searches (they share the GPU resources'
    scratch memory and stream), so calls into an index on a GPU take turns under one lock;
    ``serialise=True`` does so on the CPU as well (tests), None: only on a GPU.
    ``force_tombstones`` takes the GPU path (tombstones instead of removal) on CPU as well.
    """

    def __init__(
        self,
        cpu_index: faiss.Index,
        index_type: str,
        tombstones: Iterable[int] = (),
        use_gpu: bool = False,
        float16: bool = False,
        force_tombstones: bool = False,
        gpu_shard: bool = False,
        serialise: bool | None = None,
    ) -> None:
        self.index_type = index_type
        self.tombstones: set[int] = set(tombstones)
        self._dead = np.array(sorted(self.tombstones), dtype=np.int64)  # the same, for np.isin
        self.on_gpu = False
        self._index = cpu_index
        if use_gpu and gpu_count() > 0:
            self._index, self.on_gpu = _to_gpu(cpu_index, gpu_cloner_options(float16, gpu_shard))
        self._calls = threading.RLock() if (self.on_gpu if serialise is None else serialise) else None
        # Flat on CPU removes in place; everything else keeps tombstones until a rebuild
        self.removes_in_place = (
            not self.on_gpu and not force_tombstones and isinstance(ann.inner(cpu_index), faiss.IndexFlat)
        )

    def _turn(self) -> contextlib.AbstractContextManager[object]:
        """Held around every call into the FAISS index when calls must take turns (on a GPU)."""
        return self._calls if self._calls is not None else contextlib.nullcontext()

    @property
    def serialised(self) -> bool:
        return self._calls is not None

    @property
    def ntotal(self) -> int:
        """Vectors FAISS holds, tombstones included."""
        return int(self._index.ntotal)

    @property
    def live_count(self) -> int:
        return self.ntotal - len(self.tombstones)

    @property
    def dim(self) -> int:
        return int(self._index.d)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """ids: (N,) int64 image ids never used before; vectors: (N, D) float32 unit rows."""
        if len(ids):
            with self._turn():
                self._index.add_with_ids(
                    np.ascontiguousarray(vectors, dtype=np.float32), np.asarray(ids, dtype=np.int64)
                )

    def remove(self, ids: Iterable[int]) -> None:
        ids = list(ids)
        if not ids:
            return
        if self.removes_in_place:
            with self._turn():
                self._index.remove_ids(np.asarray(ids, dtype=np.int64))  # type: ignore[arg-type]
        else:
            self.tombstones.update(ids)
            self._dead = np.array(sorted(self.tombstones), dtype=np.int64)

    def search(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """queries (M, D) -> (scores, ids), each (M, k); tombstones and empty places have id -1.

        ``allowed``: (A,) int64 ids to restrict the search to inside FAISS (CPU, Flat/HNSW/IVF);
        ``None`` searches everything. Callers over-fetch to make up for dropped places.
        """
        params = None
        if allowed is not None:
            if not self.supports_selector:
                raise ValueError("this index cannot filter inside FAISS")
            params = ann.selector_parameters(self._index, faiss.IDSelectorBatch(allowed))
        k = max(1, min(k, self.ntotal))
        with self._turn():
            queries = np.ascontiguousarray(queries, dtype=np.float32)
            scores, ids = self._index.search(queries, k, params=params)
        if len(self._dead):
            dead = np.isin(ids, self._dead)
            ids[dead] = -1
            scores[dead] = -np.inf
        return scores, ids

    @property
    def supports_selector(self) -> bool:
        return not self.on_gpu and ann.selector_parameters(self._index, faiss.IDSelectorAll()) is not None

    def cpu_index(self) -> faiss.Index:
        """The index on the CPU (a copy when it lives on the GPU), e.g. to serialise it."""
        if not self.on_gpu:
            return self._index
        with self._turn():
            return faiss.index_gpu_to_cpu(self._index)

    def describe(self) -> str:
        where = "gpu" if self.on_gpu else "cpu"
        kind = ann.describe(self.cpu_index())
        return f"{self.index_type} ({kind}, {where}, {len(self.tombstones)} tombstones)"


def gpu_cloner_options(float16: bool, shard: bool) -> faiss.GpuMultipleClonerOptions:
    """How the index goes onto the GPUs: ``shard`` splits the vectors across them (one GPU's
    memory per 1/n of the catalog, an IndexShards), otherwise every GPU holds a full replica
    (more queries per second, an IndexReplicas); ``float16`` halves the memory of Flat/IVF-Flat."""
    options = faiss.GpuMultipleClonerOptions()
    options.useFloat16 = float16
    options.shard = shard
    return options


def _to_gpu(index: faiss.Index, options: faiss.GpuMultipleClonerOptions) -> tuple[faiss.Index, bool]:
    """A GPU clone of ``index`` across every GPU; the CPU index when FAISS has no GPU version of it."""
    try:
        return faiss.index_cpu_to_all_gpus(index, co=options), True
    except RuntimeError as exc:  # e.g. HNSW: no GPU implementation
        log.warning("keeping the %s index on the CPU: %s", ann.describe(index), str(exc).splitlines()[0])
        return index, False
