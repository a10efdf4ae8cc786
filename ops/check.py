"""``lookalike index check``: does a store hold together? Database, files, embeddings and FAISS agree."""

from __future__ import annotations

import hashlib

import numpy as np

from index.images import StoredPathError
from index.local.compact import CompactFeatures
from index.store import ProductStore
from index.vectors import SnapshotError, read_snapshot


def check_store(store: ProductStore, verify_files: bool = True) -> list[str]:
    """Every problem found, one sentence each; an empty list means the store is sound. (With
    PostgreSQL, image files missing here are fetched from the database first.)

    Meant for a store no other process writes to meanwhile (a write racing the check can show
    up as a passing disagreement between the database and FAISS).
    """
    repo = store.repository
    problems = repo.integrity_problems()
    images = repo.image_facts()
    for r in images:
        if r.embedding_bytes != 4 * store.dim:
            problems.append(f"image {r.id}: embedding of {r.embedding_bytes} bytes, expected {4 * store.dim}")
        if r.fingerprint != store.fingerprint:
            problems.append(
                f"image {r.id}: embedded by encoder {r.fingerprint[:12]}, "
                f"the store's is {store.fingerprint[:12]}"
            )
        try:
            path = store.image_file(r.image)
        except StoredPathError as exc:  # never followed: it could name any file on the machine
            problems.append(f"image {r.id}: {exc}")
            continue
        if not path.is_file():
            problems.append(f"image {r.id}: file {r.path} is missing")
        elif verify_files and hashlib.sha256(path.read_bytes()).hexdigest() != r.content_hash:
            problems.append(f"image {r.id}: file {r.path} does not match its sha256")
    for rows in repo.iter_embedding_blobs(4096):
        good = [(i, blob) for i, blob in rows if len(blob) == 4 * store.dim]  # wrong sizes: reported above
        vectors = np.frombuffer(b"".join(blob for _, blob in good), np.float32).reshape(-1, store.dim)
        norms = np.linalg.norm(vectors, axis=1)
        for (image_id, _), ok in zip(good, np.isfinite(norms) & (np.abs(norms - 1) < 1e-3), strict=True):
            if not ok:
                problems.append(f"image {image_id}: embedding is not a finite unit vector")
    problems += [f"product {pid} ({sku}) has no image" for pid, sku in repo.products_without_images()]
    held, tombstones = store.vector_ids()
    stored = {r.id for r in images}
    if missing := stored - (held - tombstones):
        problems.append(f"faiss: {len(missing)} stored images are not searchable, e.g. {sorted(missing)[:5]}")
    if extra := (held - tombstones) - stored:
        problems.append(
            f"faiss: {len(extra)} vectors of deleted images are searchable, e.g. {sorted(extra)[:5]}"
        )
    if stray := tombstones - held:
        problems.append(f"faiss: {len(stray)} tombstones name ids the index does not hold")
    problems += local_index_problems(store, stored)
    snapshot = store.directory / store.SNAPSHOT_NAME
    if snapshot.exists():
        try:
            index, _, seq = read_snapshot(snapshot)
            last = repo.last_seq()
            if seq > last or index.d != store.dim:
                problems.append(f"snapshot: holds change {seq} of {last}, {index.d}-d of {store.dim}-d")
        except SnapshotError as exc:
            problems.append(f"snapshot: {exc}")
    return problems


def local_index_problems(store: ProductStore, stored: set[int]) -> list[str]:
    """The local index against the database: every stored compact-features row decodes under the
    store's codebook, and the inverted file holds exactly the photos that have one."""
    local = store.local
    if local.codebook is None or local.kind is None:
        count = store.repository.count_features()
        return [f"local: {count} feature rows but no codebook (lookalike index features)"] if count else []
    problems = []
    with_rows: set[int] = set()  # images with a row of the current kind
    for batch in store.repository.iter_features(local.kind):
        for image_id, blob in batch:
            with_rows.add(image_id)
            try:
                compact = CompactFeatures.from_bytes(blob)
            except ValueError as exc:
                problems.append(f"local: image {image_id}: {exc}")
                continue
            if compact.count and int(compact.words.max()) >= local.codebook.size:
                problems.append(
                    f"local: image {image_id}: a word beyond the codebook's {local.codebook.size}"
                )
    if other := store.repository.count_features() - len(with_rows):
        problems.append(f"local: {other} feature rows of another codebook or detector (index features)")
    if stray := with_rows - stored:
        problems.append(f"local: {len(stray)} feature rows of deleted images, e.g. {sorted(stray)[:5]}")
    held = local.image_ids()
    if missing := with_rows - held:
        problems.append(
            f"local: {len(missing)} photos with features are not indexed, e.g. {sorted(missing)[:5]}"
        )
    if extra := held - with_rows:
        problems.append(
            f"local: {len(extra)} indexed photos have no stored features, e.g. {sorted(extra)[:5]}"
        )
    return problems
