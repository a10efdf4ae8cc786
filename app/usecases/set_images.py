"""POST / PUT /products/{id}/images: add photos to a product, or replace all of them in one step."""

from __future__ import annotations

from fastapi import UploadFile
from starlette.concurrency import run_in_threadpool

from app.errors import ProductNotFound, require_product
from app.schemas import MAX_IMAGES
from app.usecases.photos import PhotoEmbedder
from index import NearDuplicate, Product, ProductStore
from index.records import TooManyImagesError


async def set_images(
    store: ProductStore, photos: PhotoEmbedder, product_id: int, uploads: list[UploadFile], replace: bool
) -> tuple[Product, list[NearDuplicate]]:
    """The product with its new photos (``replace``: only those) and the near-duplicates among them.
    ``ProductNotFound`` for an unknown product (or one deleted meanwhile); ``TooManyImagesError``
    past MAX_IMAGES, checked before embedding and again by the store, whose count decides under
    concurrent adds; ``NearDuplicateError`` under the duplicate policy ``refuse``."""
    product = await run_in_threadpool(require_product, store, product_id)
    if len(uploads) + (0 if replace else len(product.images)) > MAX_IMAGES:
        raise TooManyImagesError(MAX_IMAGES)
    got = await photos.embed(uploads)
    done = await run_in_threadpool(
        store.add_images, product_id, got.images, got.vectors, replace, got.features, MAX_IMAGES
    )
    if done is None:
        raise ProductNotFound(product_id)
    return done
