"""VectorCache: the FAISS index as a cache of the database, through its whole life.

Load (the snapshot plus the newer changes, or a build from the stored embeddings when the
snapshot is missing, damaged or disagrees), follow committed changes, snapshot, rebuild (maybe
into another index type), compact tombstones, follow other replicas' writes (``sync``). A
catch-up that fails after a commit does not fail the write: the cache says it is degraded and
retries in the background (reloading when a batch went in only in part). Searches share the
index under a readers-writer lock; writers hold the store's writer lock (``write_lock``), which
the store takes around each write and this class takes for its own background work.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from index.db.repository import Repository
from index.vectors.build import BuiltIndex, RebuildReport, build, new_index, read_all_embeddings
from index.vectors.changes import ChangeBatch, read_changes
from index.vectors.faiss_index import VectorIndex
from index.vectors.retry import BackgroundRetry
from index.vectors.rwlock import ReadWriteLock
from index.vectors.snapshot import SnapshotError, read_snapshot, write_snapshot

log = logging.getLogger(__name__)
INDEX_TYPE_KEY = "index_type"


@dataclass(frozen=True)
class VectorOptions:
    """How the FAISS index is held: on the GPU when asked and present (``float16`` halves the
    memory of Flat/IVF-Flat there, ``gpu_shard`` splits the vectors across GPUs instead of
    replicating them), tombstones instead of removal on the CPU too (``force_tombstones``), and a
    snapshot every ``snapshot_every`` applied changes."""

    use_gpu: bool = True
    float16: bool = False
    force_tombstones: bool = False
    gpu_shard: bool = False
    snapshot_every: int = 1000


def id_map(index: Any) -> set[int]:
    """The ids an ``IndexIDMap2`` holds."""
    return set(faiss.vector_to_array(index.id_map).tolist())


class VectorCache:
    """The store's FAISS index over image ids, kept in step with the repository's change log."""

    def __init__(
        self, repo: Repository, path: Path, options: VectorOptions, write_lock: AbstractContextManager[Any]
    ) -> None:
        self.repo, self.path, self.options, self.write_lock = repo, path, options, write_lock
        self.lock = ReadWriteLock()
        with write_lock:  # no other process sharing the directory is writing a snapshot now
            for stale in path.parent.glob(f".{path.name}.*.tmp"):
                stale.unlink(missing_ok=True)  # a snapshot write interrupted by a crash
        self._index, self.snapshot_seq, self.applied_seq = self._load()
        self.stale = False  # a catch-up failed midway: FAISS may hold part of a batch until reloaded
        self.snapshot_owed = False  # a snapshot write failed: the next catch-up writes one
        self.degraded: str | None = None  # why the index is not in step with the commits, or None
        self._retry: BackgroundRetry | None = None  # made on the first failure: it refers back here
        self._closing = False

    @property
    def index_type(self) -> str:
        return self.repo.get_meta(INDEX_TYPE_KEY) or "Flat"

    @contextmanager
    def reading(self) -> Iterator[VectorIndex]:
        """The index, for searches: many at once, none while a writer swaps or updates it."""
        with self.lock.read():
            yield self._index

    def _wrap(self, cpu_index: faiss.Index, index_type: str, tombstones: Iterable[int] = ()) -> VectorIndex:
        o = self.options
        return VectorIndex(
            cpu_index, index_type, tombstones, o.use_gpu, o.float16, o.force_tombstones, o.gpu_shard
        )

    def _load(self) -> tuple[VectorIndex, int, int]:
        """(index, seq of the snapshot it was loaded from or 0, seq of the last change it holds):
        the snapshot plus the newer changes; a build from the database when it is unusable or wrong."""
        index_type = self.index_type
        if self.path.exists():
            try:
                cpu, tombstones, seq = read_snapshot(self.path)
                vectors = self._wrap(cpu, index_type, tombstones)
                with self.repo.db.snapshot() as read:
                    if cpu.d != self.repo.dim or seq > self.repo.last_seq(read):
                        raise SnapshotError(f"{self.path} does not belong to this store")
                    changes = read_changes(self.repo, read, seq)
                    changes.apply_to(vectors)
                    if id_map(vectors.cpu_index()) - vectors.tombstones == self.repo.image_ids(read):
                        return vectors, seq, changes.last_seq
                log.warning("FAISS snapshot and the database disagree on the image ids: rebuilding")
            except SnapshotError as exc:
                log.warning("ignoring FAISS snapshot, rebuilding from the database: %s", exc)
        ids, vectors_np, seq = read_all_embeddings(self.repo)
        try:
            cpu = new_index(index_type, ids, vectors_np)
        except ValueError as exc:  # e.g. too few vectors left to train this IVF
            log.warning("cannot rebuild a %s index (%s): using Flat", index_type, exc)
            cpu = new_index("Flat", ids, vectors_np)
            index_type = "Flat"
            self.repo.set_meta(INDEX_TYPE_KEY, index_type)
        vectors = self._wrap(cpu, index_type)
        with self.repo.db.snapshot() as read:
            changes = read_changes(self.repo, read, seq)
        changes.apply_to(vectors)
        return vectors, 0, changes.last_seq

    # ------------------------------------------------ under the writer lock
    def catch_up(self) -> ChangeBatch:
        """Apply every committed change newer than the last one applied (this store's and other
        processes' alike), then maybe write a snapshot (always, when an earlier one failed).
        Success ends a degraded state."""
        if self.stale:
            self.reload()
        with self.repo.db.snapshot() as read:
            changes = read_changes(self.repo, read, self.applied_seq)
        with self.lock.write():
            try:
                changes.apply_to(self._index)
            except BaseException:
                self.stale = True  # part of the batch may be in FAISS: applying it again would double it
                raise
        self.applied_seq = changes.last_seq
        if self.snapshot_owed or self.applied_seq - self.snapshot_seq >= self.options.snapshot_every:
            self.write_snapshot()
        if self.degraded is not None:
            log.info("the vector index has caught up with the catalog again")
            self.degraded = None
        return changes

    def after_commit(self) -> None:
        """``catch_up`` that never raises: the write is committed, so a failure is logged, makes
        the cache degraded and is retried in the background."""
        try:
            self.catch_up()
        except Exception as exc:
            self._failed(exc)

    def _failed(self, exc: Exception) -> None:
        log.error(
            "the write is committed, but bringing the vector index up to date failed; retrying in the "
            "background",
            exc_info=exc,
        )
        self.degraded = "the vector index is catching up with committed writes (retrying)"
        if self._closing:
            return  # the next start replays the change log
        if self._retry is None:
            self._retry = BackgroundRetry(self._recover, "lookalike-catch-up")
        self._retry.trigger()

    def _recover(self) -> None:
        """The background retry: one more catch-up, unless another one succeeded meanwhile."""
        with self.write_lock:
            if self.degraded is not None:
                self.catch_up()

    def reload(self) -> None:
        """After a catch-up failed midway: FAISS anew from the snapshot and the change log (or the
        stored embeddings), so no vector is missing or held twice."""
        fresh, snapshot_seq, applied_seq = self._load()
        with self.lock.write():
            self._index = fresh
        self.snapshot_seq, self.applied_seq = snapshot_seq, applied_seq
        self.stale = False

    def write_snapshot(self) -> int:
        """The snapshot file now; the seq it holds."""
        try:
            with self.lock.read():  # searches go on; writers are held by the writer lock
                write_snapshot(self._index, self.applied_seq, self.path)
        except BaseException:
            self.snapshot_owed = True
            raise
        self.snapshot_owed = False
        self.snapshot_seq = self.applied_seq
        return self.snapshot_seq

    def _install(self, built: BuiltIndex) -> None:
        """The built index, caught up with the changes since its read, in place of the current
        one; its type recorded and its snapshot written."""
        fresh = self._wrap(built.cpu, built.index_type)
        with self.repo.db.snapshot() as read:
            changes = read_changes(self.repo, read, built.seq)
        changes.apply_to(fresh)
        with self.lock.write():
            self._index = fresh
        self.stale = False
        self.applied_seq = changes.last_seq
        self.repo.set_meta(INDEX_TYPE_KEY, built.index_type)
        self.write_snapshot()

    # --------------------------------------------- taking the writer lock
    def snapshot(self) -> int:
        """Write the snapshot now (after a reload, when a catch-up left FAISS half-updated)."""
        with self.write_lock:
            if self.stale:
                self.reload()
            return self.write_snapshot()

    def rebuild(self, index_type: str, memory_budget_bytes: int, sample: int) -> RebuildReport:
        """Build without a lock (``index.vectors.build``), then catch up and swap under the writer
        lock: writers wait only for that, searches never wait for the build."""
        built = build(self.repo, index_type, memory_budget_bytes, sample)
        with self.write_lock:
            self._install(built)
        return RebuildReport(built.index_type, built.vectors, _since(built.started), built.tuning)

    def sync(self) -> int:
        """Apply the changes other processes committed; how many. One cheap query when none."""
        if self.repo.last_seq() == self.applied_seq:
            return 0
        with self.write_lock:
            changes = self.catch_up()
        if changes.removed:
            self.maybe_compact()
        return len(changes)

    def maybe_compact(self) -> None:
        """Rebuild when tombstones make up a quarter of the index (searches over-fetch past them).
        After a committed write: a failure is logged, and the next write tries again."""
        with self.lock.read():
            dead, total = len(self._index.tombstones), self._index.ntotal
        if dead < max(256, total // 4):
            return
        log.info("compacting the index: %d of %d vectors are tombstones", dead, total)
        index_type = self.index_type
        try:
            try:
                self.rebuild(index_type, 4 << 30, 1000)
            except ValueError as exc:  # e.g. too few vectors left to train this IVF: exact search will do
                log.warning("cannot rebuild a %s index (%s): compacting to Flat", index_type, exc)
                self.rebuild("Flat", 4 << 30, 1000)
        except Exception as exc:
            if self.snapshot_owed:  # the new index is in use, its snapshot is not written
                self._failed(exc)
            else:
                log.exception("compacting the index failed; searches skip its tombstones meanwhile")

    def close(self) -> None:
        """Stop retrying; write a final snapshot when anything changed since the last one. An
        index a failed catch-up left half-updated is not saved: start-up replays the change log
        from the last good snapshot instead."""
        self._closing = True
        if self._retry is not None:
            self._retry.stop()
            self._retry = None  # no reference cycle left: the store is freed without the GC
        with self.write_lock:
            try:
                if self.applied_seq != self.snapshot_seq and not self.stale:
                    self.write_snapshot()
            except Exception:
                log.exception("the final FAISS snapshot failed; the next start replays the change log")

    # ------------------------------------------------------------------ reads
    @property
    def live_count(self) -> int:
        with self.lock.read():
            return self._index.live_count

    @property
    def supports_selector(self) -> bool:
        """Whether filters run inside FAISS (else searches over-fetch and drop)."""
        with self.lock.read():
            return self._index.supports_selector

    @property
    def device(self) -> str:
        with self.lock.read():
            return "gpu" if self._index.on_gpu else "cpu"

    def info(self) -> dict[str, Any]:
        with self.lock.read():
            v = self._index
            return {
                "type": v.index_type,
                "device": "gpu" if v.on_gpu else "cpu",
                "vectors": v.ntotal,
                "tombstones": len(v.tombstones),
                "description": v.describe(),
            }

    def ids(self) -> tuple[set[int], set[int]]:
        """(ids FAISS holds, tombstones)."""
        with self.lock.read():
            return id_map(self._index.cpu_index()), set(self._index.tombstones)

    def nearest(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """queries (M, D) -> (scores, image ids), each (M, <=k); id -1 marks an empty place."""
        with self.lock.read():
            if self._index.live_count == 0:
                return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
            return self._index.search(queries, k)


def _since(started: float) -> float:
    return time.perf_counter() - started
