"""POST /index: one product and its photos, refused before any embedding when its sku is taken."""

from __future__ import annotations

from dataclasses import replace

from fastapi import UploadFile
from starlette.concurrency import run_in_threadpool

from app.usecases.photos import PhotoEmbedder
from index import AddResult, DuplicateSkuError, NewProduct, ProductStore


async def add_product(
    store: ProductStore, photos: PhotoEmbedder, product: NewProduct, uploads: list[UploadFile]
) -> AddResult:
    """Add ``product`` (its metadata; the photos come from ``uploads``); the answer comes after the
    commit. ``DuplicateSkuError`` when the sku exists, checked first (the store checks again: a
    concurrent add may win), ``NearDuplicateError`` under the duplicate policy ``refuse``."""
    if await run_in_threadpool(store.get_by_sku, product.sku) is not None:
        raise DuplicateSkuError(product.sku)
    got = await photos.embed(uploads)
    new = replace(product, images=got.images, embeddings=got.vectors, features=got.features)
    return await run_in_threadpool(store.add_products, [new])
