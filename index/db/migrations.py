"""The schema version a store records, and the steps that bring an older store up to it.

Opening a database creates whatever tables are missing (``CREATE ... IF NOT EXISTS``); what a
newer schema needs beyond that is a numbered step here, run once, in order, each in its own
transaction that also records the version it reached. A store whose recorded version is above
``SCHEMA_VERSION`` was written by a newer lookalike: it is refused before anything is written,
rather than served by code that does not know its tables.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from index.db.base import Transaction
from index.db.repository import Repository
from index.records import EncoderMismatchError, SchemaVersionError

log = logging.getLogger(__name__)
SCHEMA_VERSION = 3
VERSION_KEY = "schema_version"


def _local_features(repo: Repository, tx: Transaction) -> None:
    """2: ``image_features`` (made on opening). Its images have no features until
    ``lookalike index features`` computes them, and are not re-ranked meanwhile."""
    log.info("store %s: schema version 2 (local features for re-ranking)", repo.db.location)


def _local_codebook(repo: Repository, tx: Transaction) -> None:
    """3: ``local_codebook`` (made on opening). Features stored before it (raw SIFT) are not
    used by the local index; ``lookalike index features`` trains a codebook and encodes them."""
    log.info("store %s: schema version 3 (the local index's codebook)", repo.db.location)


STEPS: dict[int, Callable[[Repository, Transaction], None]] = {2: _local_features, 3: _local_codebook}


def stored_version(repo: Repository) -> int:
    """The version the store records; 1 for a store made before versions were recorded."""
    return int(repo.meta().get(VERSION_KEY, "1"))


def check_version(repo: Repository) -> int:
    """The stored version; ``SchemaVersionError`` when it is newer than this code knows."""
    version = stored_version(repo)
    if version > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"{repo.db.location} has schema version {version}, made by a newer lookalike; this one "
            f"knows versions up to {SCHEMA_VERSION}: upgrade lookalike to open it"
        )
    return version


def migrate(repo: Repository) -> None:
    """Run the steps above the stored version; ``SchemaVersionError`` for a newer store."""
    version = check_version(repo)
    for step in range(version + 1, SCHEMA_VERSION + 1):
        with repo.db.transaction() as tx:
            STEPS[step](repo, tx)
            repo.set_meta(VERSION_KEY, str(step), tx)


def _index_text_once(repo: Repository) -> None:
    """A store made before text search existed gets its text index filled once."""
    if "text_index" not in repo.meta():
        with repo.db.transaction() as tx:
            repo.db.rebuild_text_index(tx)
            repo.set_meta("text_index", "1", tx)


def prepare(repo: Repository, fingerprint: str | None, dim: int | None) -> tuple[str, int]:
    """Make a new store's meta, or check an existing store against the encoder and bring it up
    to date; return the store's (fingerprint, dim) and set ``repo.dim``."""
    meta = repo.meta()
    if not meta:
        if fingerprint is None or dim is None:
            raise ValueError(f"{repo.db.location} holds no store yet; give the encoder fingerprint and dim")
        fresh = {
            VERSION_KEY: str(SCHEMA_VERSION),
            "fingerprint": fingerprint,
            "dim": str(dim),
            "index_type": "Flat",
        }
        if not repo.create_meta(fresh):  # another process made it meanwhile
            return prepare(repo, fingerprint, dim)
        repo.dim = dim
        _index_text_once(repo)
        return fingerprint, dim
    check_version(repo)  # a newer store is refused before anything is written
    if fingerprint is not None and fingerprint != meta["fingerprint"]:
        raise EncoderMismatchError(
            f"{repo.db.location} was built with encoder {meta['fingerprint'][:12]}, not "
            f"{fingerprint[:12]}; re-embed the catalog into a new store with "
            "`lookalike build --catalog ... --encoder NEW.pt --store NEW_DIR` and switch to it"
        )
    if dim is not None and dim != int(meta["dim"]):
        raise EncoderMismatchError(f"store holds {meta['dim']}-d embeddings, encoder makes {dim}-d")
    repo.dim = int(meta["dim"])
    _index_text_once(repo)
    migrate(repo)
    return meta["fingerprint"], repo.dim
