"""``lookalike index backup``: a consistent copy of a store while it serves.

Order matters, because the server may write meanwhile:

1. the FAISS snapshot first (written by rename, so the copy is one whole version), which is
   never newer than the SQLite copy that follows: opening the backup replays the newer changes;
2. SQLite through its online backup API: one consistent state, including what is still in the
   write-ahead log, while the server goes on reading and writing;
3. the image files that copy refers to (named by their sha256, never rewritten), each checked.

The copy is assembled next to the destination and renamed into place at the end, so a failed
backup leaves no half store behind. Every file and directory of the copy is fsynced before the
rename, and the destination's parent after it: a backup that reported success survives a power
loss. The result is a store directory: serve it or check it with ``lookalike index check --store DIR``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from index.db import copied_files, copy_database
from index.images import StoredPathError, resolve_image_path
from index.store import ProductStore

_CHUNK = 1 << 20


@dataclass(frozen=True)
class BackupReport:
    products: int
    images: int
    bytes: int  # image files and database copied
    snapshot: bool  # a FAISS snapshot was copied (else the backup rebuilds it when first opened)
    seconds: float
    damaged: list[str] = field(default_factory=list)  # source files whose sha256 is not the recorded one

    def summary(self) -> str:
        return (
            f"backed up {self.products:,} products, {self.images:,} image files, "
            f"{self.bytes / 2**20:,.1f} MiB{', FAISS snapshot' if self.snapshot else ''} "
            f"in {self.seconds:.1f} s"
        )


def _copy_checked(source: Path, target: Path, content_hash: str) -> tuple[int, bool]:
    """Copy one image file; (bytes, whether its sha256 is the recorded one)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    digest, size = hashlib.sha256(), 0
    with source.open("rb") as src, target.open("wb") as dst:
        while chunk := src.read(_CHUNK):
            digest.update(chunk)
            dst.write(chunk)
            size += len(chunk)
        dst.flush()
        os.fsync(dst.fileno())
    shutil.copystat(source, target)
    return size, digest.hexdigest() == content_hash


def _fsync(path: Path) -> None:
    """Push ``path`` (a file, or a directory's entries) to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def backup_store(store_dir: str | Path, destination: str | Path) -> BackupReport:
    """Copy the store at ``store_dir`` into the new directory ``destination`` (absent or empty).

    Raises ``FileNotFoundError`` when there is no store, ``ValueError`` when the destination holds
    anything or an image file vanished during the copy (deleted meanwhile: run it again).
    """
    started = time.perf_counter()
    source, dest = Path(store_dir), Path(destination)
    database = source / ProductStore.DB_NAME
    if not database.is_file():
        raise FileNotFoundError(
            f"{source} holds no SQLite product store (no {ProductStore.DB_NAME}); "
            "a catalog kept in PostgreSQL is backed up with pg_dump"
        )
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise ValueError(f"{dest} exists and is not an empty directory; back up into a new one")
    if dest.resolve().is_relative_to(source.resolve()):
        raise ValueError(f"{dest} is inside the store {source}; back up somewhere else")
    partial = dest.parent / f".{dest.name}.partial"
    shutil.rmtree(partial, ignore_errors=True)  # an earlier attempt that died
    partial.mkdir(parents=True)
    try:
        snapshot = source / ProductStore.SNAPSHOT_NAME
        has_snapshot = snapshot.is_file()
        if has_snapshot:
            shutil.copy2(snapshot, partial / ProductStore.SNAPSHOT_NAME)
            _fsync(partial / ProductStore.SNAPSHOT_NAME)
        copy_database(database, partial / ProductStore.DB_NAME)
        _fsync(partial / ProductStore.DB_NAME)
        files, products = copied_files(partial / ProductStore.DB_NAME)
        total, damaged, vanished = (partial / ProductStore.DB_NAME).stat().st_size, [], []
        for rel, content_hash in files:
            try:
                origin = resolve_image_path(source, rel, content_hash)  # never follow a row out
            except StoredPathError as exc:
                raise ValueError(f"{source} cannot be backed up as it is: {exc}") from exc
            if not origin.is_file():
                vanished.append(rel)
                continue
            size, sound = _copy_checked(origin, partial / rel, content_hash)
            total += size
            if not sound:
                damaged.append(rel)
        if vanished:
            raise ValueError(
                f"{len(vanished)} image file(s) disappeared during the backup (e.g. {vanished[0]}): "
                "deleted while it ran, or missing from the store (lookalike index check); run it again"
            )
        for directory in sorted((p for p in partial.rglob("*") if p.is_dir()), reverse=True):
            _fsync(directory)  # the image files' names
        _fsync(partial)
        if dest.exists():
            dest.rmdir()
        partial.rename(dest)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    _fsync(dest.parent)  # the rename
    return BackupReport(products, len(files), total, has_snapshot, time.perf_counter() - started, damaged)
