"""Where a stored image's file lives: the store's own content-addressed names, and nothing else.

An image row records its file as a path relative to the store directory,
``images/<first two hex digits>/<sha256>.<ext>``, named by the bytes' hash (never a client's
name). A row is data, not an instruction: a database edited by hand, restored from elsewhere or
shared with other servers through PostgreSQL could hold ``../../etc/passwd`` or an absolute
path. So every read, write and unlink of an image file goes through ``resolve_image_path``,
which accepts only the names the store itself writes and only a file that resolves (symlinks
and all) inside the store directory. A store whose ``images`` folder is a symlink to another
disk is refused for the same reason: mount the disk at the store directory instead.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from encoder.images import SUPPORTED_FORMATS

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
