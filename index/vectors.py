"""The FAISS side of the store: index construction, GPU placement and atomic snapshots.

A snapshot file holds one serialised index plus the last change sequence number it contains:
``MAGIC | seq (u64) | length (u64) | index bytes | sha256(index bytes)``. It is written to a
temp file, fsynced and renamed, so a crash leaves either the old snapshot or the new one.
"""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path

import faiss
import numpy as np

from encoder.atomic import atomic_write

MAGIC = b"LOOKALIKE-FAISS-1\n"
_HEADER = struct.Struct("<QQ")


class SnapshotError(ValueError):
    """A snapshot file that is truncated, corrupted or of another format."""


def new_flat_index(dim: int) -> faiss.Index:
    """Exact inner-product search over unit vectors (= cosine), keyed by image id."""
    return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))


def gpu_count() -> int:
    """Number of GPUs FAISS can use (0 with faiss-cpu, or faiss-gpu on a machine without one)."""
    get = getattr(faiss, "get_num_gpus", None)
    return int(get()) if get else 0


def place(index: faiss.Index, use_gpu: bool) -> faiss.Index:
    """The index itself on CPU, or a GPU clone of it when ``use_gpu`` and a GPU is present."""
    if use_gpu and gpu_count() > 0:
        return faiss.index_cpu_to_all_gpus(index)
    return index


def to_cpu(index: faiss.Index) -> faiss.Index:
    if gpu_count() > 0 and hasattr(faiss, "index_gpu_to_cpu"):
        try:
            return faiss.index_gpu_to_cpu(index)
        except RuntimeError:  # already a CPU index
            return index
    return index


def write_snapshot(index: faiss.Index, seq: int, path: Path) -> None:
    """Serialise ``index`` with its sequence number to ``path`` atomically."""
    data = faiss.serialize_index(to_cpu(index)).tobytes()
    with atomic_write(path) as f:
        f.write(MAGIC)
        f.write(_HEADER.pack(seq, len(data)))
        f.write(data)
        f.write(hashlib.sha256(data).digest())


def read_snapshot(path: Path) -> tuple[faiss.Index, int]:
    """(CPU index, seq) from a snapshot file; ``SnapshotError`` when it is not intact."""
    blob = path.read_bytes()
    if not blob.startswith(MAGIC) or len(blob) < len(MAGIC) + _HEADER.size + 32:
        raise SnapshotError(f"{path} is not a lookalike FAISS snapshot")
    seq, length = _HEADER.unpack_from(blob, len(MAGIC))
    start = len(MAGIC) + _HEADER.size
    data, digest = blob[start : start + length], blob[start + length :]
    if len(data) != length or hashlib.sha256(data).digest() != digest:
        raise SnapshotError(f"{path} is truncated or corrupted")
    return faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8)), seq
