"""The FAISS side of the store: a cache of the database's embeddings that follows its change log.

``VectorCache`` (cache.py) runs the lifecycle, configured by one ``VectorOptions``, under a
readers-writer lock (rwlock.py), retrying failed catch-ups in the background (retry.py);
``VectorIndex`` (faiss_index.py) is one FAISS index with its GPU placement and tombstones;
``ann`` chooses and tunes index types, build.py builds one from the stored embeddings;
snapshot.py is the file format; changes.py reads the change log.
"""

from index.vectors.build import BuiltIndex, RebuildReport
from index.vectors.cache import VectorCache, VectorOptions
from index.vectors.changes import ChangeBatch, read_changes
from index.vectors.faiss_index import VectorIndex, gpu_cloner_options, gpu_count
from index.vectors.snapshot import SnapshotError, read_snapshot, write_snapshot

__all__ = [
    "BuiltIndex",
    "ChangeBatch",
    "RebuildReport",
    "SnapshotError",
    "VectorCache",
    "VectorIndex",
    "VectorOptions",
    "gpu_cloner_options",
    "gpu_count",
    "read_changes",
    "read_snapshot",
    "write_snapshot",
]
