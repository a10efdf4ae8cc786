"""The store's database: the two SQL dialects behind one interface, and the repository over them.

``open_database`` picks the dialect (SQLite by default, PostgreSQL for several replicas);
``Repository`` is the only code that knows the schema; ``migrations`` brings an older store up to
``SCHEMA_VERSION``. Submodules import ``index.db.base``, never this package, so there is no cycle.
"""

from pathlib import Path

from index.db.base import Database, Queries, QueryTimeout, Transaction
from index.db.repository import ImageFacts, NewImage, Repository, decode_embeddings
from index.db.sqlite import SqliteDatabase, copied_files, copy_database

__all__ = [
    "Database",
    "ImageFacts",
    "NewImage",
    "Queries",
    "QueryTimeout",
    "Repository",
    "SqliteDatabase",
    "Transaction",
    "copied_files",
    "copy_database",
    "decode_embeddings",
    "open_database",
]


def open_database(sqlite_path: Path, url: str | None = None) -> Database:
    """PostgreSQL when ``url`` (``postgresql://...``) is given, else the SQLite file ``sqlite_path``."""
    if not url:
        return SqliteDatabase(sqlite_path)
    if not url.startswith(("postgresql://", "postgres://")):
        raise ValueError(
            f"database URL {url.partition(':')[0]}:... is not supported: give postgresql://user@host/db, "
            "or none for the embedded SQLite store"
        )
    try:
        from index.db.postgres import PostgresDatabase  # psycopg is only needed here
    except ImportError as exc:
        raise ValueError(
            f"a PostgreSQL store needs psycopg: pip install 'lookalike[postgres]'; {exc}"
        ) from exc
    return PostgresDatabase(url)
