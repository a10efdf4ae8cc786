"""POST /index/batch: many products in one request and one transaction: all of them, or none."""

from __future__ import annotations

import numpy as np
from fastapi import UploadFile
from pydantic import TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool

from app.errors import ApiError, DuplicateSku
from app.schemas import ManifestItem
from app.usecases.photos import PhotoEmbedder
from index import AddResult, DuplicateSkuError, NewProduct, ProductStore

MAX_BATCH_PRODUCTS, MAX_BATCH_IMAGES = 100, 200
_MANIFEST = TypeAdapter(list[ManifestItem])


async def add_batch(
    store: ProductStore, photos: PhotoEmbedder, manifest: str, uploads: list[UploadFile]
) -> AddResult:
    """Add the products of ``manifest`` (a JSON list of ManifestItem) with the ``uploads`` it names.
    Refused before any embedding: 422 ``invalid_manifest`` for a manifest that does not match the
    files, 409 ``duplicate_sku`` (the skus in ``details``) for skus that exist or repeat; then by
    the store's write (``NearDuplicateError`` under the duplicate policy ``refuse``)."""
    items = _read_manifest(manifest)
    files = _files_by_name(items, uploads)
    skus = [i.sku for i in items]
    taken = sorted(
        {s for s in skus if skus.count(s) > 1} | await run_in_threadpool(store.existing_skus, skus)
    )
    if taken:
        raise DuplicateSku(f"these skus exist or repeat: {taken[:10]}", taken)
    got = await photos.embed(list(files.values()), MAX_BATCH_IMAGES)
    data = dict(zip(files, got.images, strict=True))
    vectors = dict(zip(files, got.vectors, strict=True))
    features = dict(zip(files, got.features or [None] * len(files), strict=True))
    new = [
        NewProduct(
            i.sku,
            i.title,
            i.category,
            i.price,
            i.attributes,
            tuple(data[n] for n in i.images),
            np.stack([vectors[n] for n in i.images]),
            tuple(features[n] for n in i.images) if got.features is not None else None,
        )
        for i in items
    ]
    try:
        return await run_in_threadpool(store.add_products, new)
    except DuplicateSkuError as exc:  # lost a race with another add of that sku
        raise DuplicateSku(str(exc), [exc.sku]) from exc


def _read_manifest(raw: str) -> list[ManifestItem]:
    try:
        items = _MANIFEST.validate_json(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5])
        raise ApiError(422, "invalid_manifest", f"manifest: {problems}") from exc
    if not 1 <= len(items) <= MAX_BATCH_PRODUCTS:
        raise ApiError(422, "invalid_manifest", f"a batch holds 1 to {MAX_BATCH_PRODUCTS} products")
    return items


def _files_by_name(items: list[ManifestItem], uploads: list[UploadFile]) -> dict[str, UploadFile]:
    """The uploads by file name; 422 unless each has its own name and the manifest names each."""
    files = {u.filename or "": u for u in uploads}
    named = {name for item in items for name in item.images}
    if len(uploads) > MAX_BATCH_IMAGES or len(files) != len(uploads):
        raise ApiError(422, "invalid_manifest", f"at most {MAX_BATCH_IMAGES} files, each with its own name")
    if missing := sorted(named - set(files)):
        raise ApiError(422, "invalid_manifest", f"the manifest names files that were not sent: {missing[:5]}")
    if unused := sorted(set(files) - named):
        raise ApiError(422, "invalid_manifest", f"files sent but not named in the manifest: {unused[:5]}")
    return files
