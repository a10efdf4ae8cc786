"""Where a stored image's file lives: the store's own content-addressed names, and nothing else.

An image row records its file as a path relative to the store directory,
``images/<first two hex digits>/<sha256>.<ext>``, named by the bytes' hash (never a client's
name). A row is data, not an instruction: a database edited by hand, restored from elsewhere or
shared with other servers through PostgreSQL could hold ``../../etc/passwd`` or an absolute
path. So every read, write and unlink of an image file goes through ``resolve_image_path``,
which accepts only the names the store itself writes and only a file that resolves (symlinks
and all) inside the store directory. A store whose ``images`` folder is a symlink to another
disk is refused for the same reason: mount the disk at the store directory instead.

``ImageFiles`` writes and deletes those files for the store's writes: written before the
transaction that refers to them, dropped when it fails or when no row points at them any more.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from encoder.atomic import atomic_write
from encoder.images import SUPPORTED_FORMATS, sniff_format
from index.db.repository import NewImage, Repository
from index.records import ProductImage

log = logging.getLogger(__name__)

IMAGES_DIR = "images"
_EXTENSIONS = {"jpeg": "jpg"}  # the file name's extension per sniffed format, where it differs
_UNKNOWN = "bin"  # bytes of no sniffed format (never stored through the API, which sniffs first)
_NAME = re.compile(
    rf"{IMAGES_DIR}/([0-9a-f]{{2}})/(\1[0-9a-f]{{62}})\."
    rf"(?:{'|'.join(sorted({_EXTENSIONS.get(f, f) for f in SUPPORTED_FORMATS} | {_UNKNOWN}))})"
)


class StoredPathError(ValueError):
    """An image row's path is not a name this store writes, or leads outside the store."""


def image_relpath(digest: str, image_format: str | None) -> str:
    """The relative path the store gives the bytes with sha256 ``digest`` of ``image_format``."""
    ext = _EXTENSIONS.get(image_format or "", image_format or _UNKNOWN)
    return f"{IMAGES_DIR}/{digest[:2]}/{digest}.{ext}"


def resolve_image_path(
    store_dir: str | os.PathLike[str], relative: str, content_hash: str | None = None
) -> Path:
    """The file of the image row path ``relative`` in ``store_dir``, checked before it is used.

    Raises ``StoredPathError`` when ``relative`` is not ``images/xx/<sha256>.<ext>`` (with
    ``content_hash``: that hash), or when it resolves outside the store (a symlink pointing out).
    The message names the row's path, for logs and the command line; not for HTTP answers.
    """
    match = _NAME.fullmatch(relative) if isinstance(relative, str) else None
    if match is None or (content_hash is not None and match.group(2) != content_hash):
        raise StoredPathError(
            f"stored image path {relative!r} is not a file name this store writes "
            f"({IMAGES_DIR}/xx/<sha256>.<ext>); not followed: the store's database is damaged "
            "or was edited (lookalike index check)"
        )
    root = Path(store_dir).resolve()
    target = (root / relative).resolve()
    if not target.is_relative_to(root / IMAGES_DIR):
        raise StoredPathError(
            f"stored image path {relative!r} resolves outside the store's {IMAGES_DIR} folder "
            "(a symlink); not followed"
        )
    return target


class ImageFiles:
    """The content-addressed image files of one store directory. Writes and drops are called
    under the store's writer lock, so no other write can start or stop using a file meanwhile."""

    def __init__(self, directory: Path, repo: Repository) -> None:
        self.directory, self.repo = directory, repo

    def write(self, data: bytes) -> tuple[str, str]:
        """Store bytes under their sha256 (never a client's name); return (hash, relative path)."""
        digest = hashlib.sha256(data).hexdigest()
        rel = image_relpath(digest, sniff_format(data))
        target = resolve_image_path(self.directory, rel, digest)
        if not target.exists():  # same bytes, same name: a file already there is this one
            with atomic_write(target) as f:
                f.write(data)
        return digest, rel

    @contextmanager
    def written(self, blobs: Sequence[bytes]) -> Iterator[list[tuple[str, str, bytes]]]:
        """(hash, relative path, bytes) of each blob's file, written for a write in progress;
        when the write fails, the files no row points at are deleted."""
        files = [(*self.write(data), data) for data in blobs]
        try:
            yield files
        except BaseException:
            self.drop_unreferenced(rel for _, rel, _ in files)
            raise

    def drop_unreferenced(self, paths: Iterable[str]) -> None:
        """Delete image files no image row points at any more (files are shared by content).
        (With PostgreSQL the files here are a cache of the bytes in the database: one another
        replica drops stays here, and is still right, being named by its content.)"""
        for rel in set(paths):
            try:
                target = resolve_image_path(self.directory, rel)
            except StoredPathError as exc:  # the row is gone; what it pointed at is not ours to delete
                log.error("image file not deleted: %s", exc)
                continue
            if not self.repo.path_in_use(rel):
                target.unlink(missing_ok=True)

    def file(self, image: ProductImage) -> Path:
        """The image's file here; fetched from the database first when it keeps the bytes and the
        file is not here yet (stored by another replica). Raises ``StoredPathError`` for a row whose
        path is not one this store writes (never read or written)."""
        path = resolve_image_path(self.directory, image.path, image.content_hash)
        if not path.exists() and (data := self.repo.image_bytes(image.path)) is not None:
            with atomic_write(path) as f:
                f.write(data)
        return path


def new_images(files: Sequence[tuple[str, str, bytes]], embeddings: np.ndarray) -> list[NewImage]:
    """The rows to insert for written ``files`` and their embeddings (N, D)."""
    return [NewImage(h, rel, data, vector) for (h, rel, data), vector in zip(files, embeddings, strict=True)]
