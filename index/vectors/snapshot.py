"""The FAISS snapshot file: the CPU index, its tombstones and the last change it holds.

Layout: ``MAGIC | seq, index length, tombstone count (u64 each) | index bytes | tombstone ids
(i64) | sha256 of all before``. It is written to a temp file, fsynced and renamed, so a crash
leaves either the old snapshot or the new one; start-up loads it and replays the newer changes.
"""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path

import faiss
import numpy as np

from encoder.atomic import atomic_write
from index.vectors.faiss_index import VectorIndex

MAGIC = b"LOOKALIKE-FAISS-2\n"
_HEADER = struct.Struct("<QQQ")


class SnapshotError(ValueError):
    """A snapshot file that is truncated, corrupted or of another format."""


def write_snapshot(vectors: VectorIndex, seq: int, path: Path) -> None:
    """Serialise ``vectors`` (index + tombstones) with its sequence number to ``path`` atomically."""
    data = faiss.serialize_index(vectors.cpu_index()).tobytes()
    dead = np.array(sorted(vectors.tombstones), dtype="<i8").tobytes()
    header = MAGIC + _HEADER.pack(seq, len(data), len(vectors.tombstones))
    digest = hashlib.sha256()
    for part in (header, data, dead):
        digest.update(part)
    with atomic_write(path) as f:
        for part in (header, data, dead, digest.digest()):
            f.write(part)


def read_snapshot(path: Path) -> tuple[faiss.Index, set[int], int]:
    """(CPU index, tombstones, seq) from a snapshot file; ``SnapshotError`` when it is not intact."""
    blob = path.read_bytes()
    start = len(MAGIC) + _HEADER.size
    if not blob.startswith(MAGIC) or len(blob) < start + 32:
        raise SnapshotError(f"{path} is not a lookalike FAISS snapshot of this version")
    seq, length, n_dead = _HEADER.unpack_from(blob, len(MAGIC))
    end = start + length + 8 * n_dead
    if len(blob) != end + 32 or hashlib.sha256(blob[:end]).digest() != blob[end:]:
        raise SnapshotError(f"{path} is truncated or corrupted")
    index = faiss.deserialize_index(np.frombuffer(blob[start : start + length], dtype=np.uint8))
    dead = np.frombuffer(blob[start + length : end], dtype="<i8")
    return index, {int(i) for i in dead}, seq
