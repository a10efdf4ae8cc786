"""The catalog over HTTP: add (POST /index), read, list, update, images, delete."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, File, Form, Query, Request, Response, UploadFile
from fastapi.responses import FileResponse
from pydantic import TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool

from app.deps import (
    MAX_ID,
    ApiKeyDep,
    EmbedderDep,
    ImageId,
    ProductId,
    QueryFilter,
    RerankDep,
    SettingsDep,
    StoreDep,
)
from app.embedder import Embedder
from app.errors import ApiError, DuplicateSku, ProductNotFound, require_product
from app.forms import json_object_field
from app.schemas import (
    MAX_IMAGES,
    AddedProductOut,
    BatchAdded,
    Category,
    CategoryOut,
    ErrorResponse,
    ManifestItem,
    NearDuplicateOut,
    Price,
    ProductFields,
    ProductOut,
    ProductUpdate,
    Sku,
    Title,
)
from app.uploads import embed_and_describe, read_upload
from encoder.local_features import LocalFeatures
from index import DuplicateSkuError, NearDuplicate, NewProduct, Product, ProductStore
from index.images import StoredPathError
from index.records import TooManyImagesError

__all__ = ["MAX_IMAGES", "router"]
log = logging.getLogger(__name__)
router = APIRouter(tags=["products"])
_MEDIA_TYPES = {
    "jpg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "gif": "image/gif",
    "bmp": "image/bmp",
}
_WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (400, 401, 403, 409, 413, 415, 422)
}


@dataclass(frozen=True)
class _Embedded:
    images: tuple[bytes, ...]
    vectors: np.ndarray  # (N, D)
    features: tuple[LocalFeatures | None, ...] | None  # for the geometric re-ranking; None: off


async def _embed_all(
    embedder: Embedder,
    uploads: list[UploadFile],
    max_bytes: int,
    local_features: bool,
    limit: int = MAX_IMAGES,
) -> _Embedded:
    """Read and embed every upload (together, so they share encoder batches); with
    ``local_features``, find those of each photo meanwhile (kept for the geometric re-ranking)."""
    if not 1 <= len(uploads) <= limit:
        raise ApiError(422, "invalid_request", f"send between 1 and {limit} images")
    data = [await read_upload(u, max_bytes) for u in uploads]
    done = await asyncio.gather(*(embed_and_describe(embedder, d, local_features) for d in data))
    vectors = np.stack([np.asarray(v) for v, _ in done])
    return _Embedded(tuple(data), vectors, tuple(f for _, f in done) if local_features else None)


def _added(product: Product, duplicates: list[NearDuplicate]) -> AddedProductOut:
    return AddedProductOut(
        **ProductOut.from_product(product).model_dump(),
        near_duplicates=[NearDuplicateOut.from_record(d) for d in duplicates],
    )


@router.post(
    "/index",
    status_code=201,
    response_model=AddedProductOut,
    dependencies=[ApiKeyDep],
    responses=_WRITE_ERRORS,
)
async def add_product(
    store: StoreDep,
    embedder: EmbedderDep,
    settings: SettingsDep,
    reranking: RerankDep,
    image: Annotated[
        list[UploadFile], File(description="the product's photos: repeat the field for several")
    ],
    sku: Annotated[Sku, Form(description="unique stock-keeping unit")],
    title: Annotated[Title, Form()],
    category: Annotated[Category | None, Form()] = None,
    price: Annotated[Price | None, Form()] = None,
    attributes: Annotated[str | None, Form(description="JSON object of extra fields")] = None,
) -> AddedProductOut:
    """Add one product with its photos; the answer comes after the SQLite commit.

    409 ``duplicate_sku`` when the sku exists; 409 ``near_duplicate`` (with ``details``) when a
    photo nearly equals a stored one and LOOKALIKE_DUPLICATE_POLICY is ``refuse``; with ``report``
    such photos are listed in ``near_duplicates`` of the answer.
    """
    attrs = json_object_field(attributes, "attributes", "invalid_attributes")
    if await run_in_threadpool(store.get_by_sku, sku) is not None:
        raise DuplicateSkuError(sku)  # the store's own refusal, before the photos cost an embedding
    got = await _embed_all(embedder, image, settings.max_upload_bytes, reranking.enabled)
    new = NewProduct(sku, title, category or None, price, attrs, got.images, got.vectors, got.features)
    result = await run_in_threadpool(store.add_products, [new])
    return _added(result.products[0], result.near_duplicates)


MAX_BATCH_PRODUCTS, MAX_BATCH_IMAGES = 100, 200


def _manifest(raw: str) -> list[ManifestItem]:
    try:
        items = TypeAdapter(list[ManifestItem]).validate_json(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5])
        raise ApiError(422, "invalid_manifest", f"manifest: {problems}") from exc
    if not 1 <= len(items) <= MAX_BATCH_PRODUCTS:
        raise ApiError(422, "invalid_manifest", f"a batch holds 1 to {MAX_BATCH_PRODUCTS} products")
    return items


@router.post(
    "/index/batch",
    status_code=201,
    response_model=BatchAdded,
    dependencies=[ApiKeyDep],
    responses=_WRITE_ERRORS,
)
async def add_products(
    store: StoreDep,
    embedder: EmbedderDep,
    settings: SettingsDep,
    reranking: RerankDep,
    manifest: Annotated[
        str,
        Form(
            description='JSON list of products: [{"sku", "title", "category", "price", "attributes", '
            '"images": [uploaded file names]}]'
        ),
    ],
    image: Annotated[list[UploadFile], File(description="every photo the manifest names, by file name")],
) -> BatchAdded:
    """Add many products in one request and one transaction: all of them, or none (409/422)."""
    items = _manifest(manifest)
    uploads = {u.filename or "": u for u in image}
    named = [name for item in items for name in item.images]
    if len(image) > MAX_BATCH_IMAGES or len(uploads) != len(image):
        raise ApiError(422, "invalid_manifest", f"at most {MAX_BATCH_IMAGES} files, each with its own name")
    if missing := sorted(set(named) - set(uploads)):
        raise ApiError(422, "invalid_manifest", f"the manifest names files that were not sent: {missing[:5]}")
    if unused := sorted(set(uploads) - set(named)):
        raise ApiError(422, "invalid_manifest", f"files sent but not named in the manifest: {unused[:5]}")
    skus = [i.sku for i in items]
    taken = sorted(
        {s for s in skus if skus.count(s) > 1} | await run_in_threadpool(store.existing_skus, skus)
    )
    if taken:
        raise DuplicateSku(f"these skus exist or repeat: {taken[:10]}", taken)
    got = await _embed_all(
        embedder, list(uploads.values()), settings.max_upload_bytes, reranking.enabled, MAX_BATCH_IMAGES
    )
    data = dict(zip(uploads, got.images, strict=True))
    vectors = dict(zip(uploads, got.vectors, strict=True))
    features = dict(zip(uploads, got.features or [None] * len(uploads), strict=True))
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
        result = await run_in_threadpool(store.add_products, new)
    except DuplicateSkuError as exc:  # lost a race with another add of that sku
        raise DuplicateSku(str(exc), [exc.sku]) from exc
    by_sku: dict[str, list[NearDuplicate]] = {}
    for d in result.near_duplicates:
        by_sku.setdefault(d.sku, []).append(d)
    return BatchAdded(products=[_added(p, by_sku.get(p.sku, [])) for p in result.products])


_UPDATE_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (401, 403, 404, 409, 422)
}


def _update(store: ProductStore, product_id: int, changes: dict[str, Any]) -> ProductOut:
    product = store.update_product(product_id, changes)
    if product is None:
        raise ProductNotFound(product_id)
    return ProductOut.from_product(product)


@router.patch(
    "/products/{product_id}", response_model=ProductOut, dependencies=[ApiKeyDep], responses=_UPDATE_ERRORS
)
def update_product(store: StoreDep, product_id: ProductId, update: ProductUpdate) -> ProductOut:
    """Change some of a product's metadata (JSON body with the fields to change); photos stay."""
    changes = update.model_dump(exclude_unset=True)
    for key in ("sku", "title", "attributes"):
        if key in changes and changes[key] is None:
            raise ApiError(422, "invalid_request", f"{key} cannot be null")
    return _update(store, product_id, changes)


@router.put(
    "/products/{product_id}", response_model=ProductOut, dependencies=[ApiKeyDep], responses=_UPDATE_ERRORS
)
def replace_product(store: StoreDep, product_id: ProductId, fields: ProductFields) -> ProductOut:
    """Replace all of a product's metadata; its photos stay (PUT /products/{id}/images for those)."""
    return _update(store, product_id, fields.model_dump())


_IMAGE_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (400, 401, 403, 404, 409, 413, 415, 422)
}


@router.post(
    "/products/{product_id}/images",
    response_model=AddedProductOut,
    dependencies=[ApiKeyDep],
    responses=_IMAGE_ERRORS,
    summary="Add photos to a product",
)
@router.put(
    "/products/{product_id}/images",
    response_model=AddedProductOut,
    dependencies=[ApiKeyDep],
    responses=_IMAGE_ERRORS,
    summary="Replace all photos of a product",
)
async def set_images(
    request: Request,
    store: StoreDep,
    embedder: EmbedderDep,
    settings: SettingsDep,
    reranking: RerankDep,
    product_id: ProductId,
    image: Annotated[list[UploadFile], File(description="the photos: repeat the field for several")],
) -> AddedProductOut:
    """POST adds photos to a product, PUT replaces all of them in one step; searches match any."""
    replace = request.method == "PUT"
    product = await run_in_threadpool(require_product, store, product_id)
    if len(image) + (0 if replace else len(product.images)) > MAX_IMAGES:  # early, before embedding
        raise TooManyImagesError(MAX_IMAGES)
    got = await _embed_all(embedder, image, settings.max_upload_bytes, reranking.enabled)
    # the store counts again: under concurrent adds its count decides (TooManyImagesError)
    done = await run_in_threadpool(
        store.add_images, product_id, got.images, got.vectors, replace, got.features, MAX_IMAGES
    )
    if done is None:  # deleted meanwhile
        raise ProductNotFound(product_id)
    return _added(*done)


@router.delete(
    "/products/{product_id}/images/{image_id}",
    response_model=ProductOut,
    dependencies=[ApiKeyDep],
    responses={code: {"model": ErrorResponse} for code in (401, 403, 404, 409)},
)
def delete_image(store: StoreDep, product_id: ProductId, image_id: ImageId) -> ProductOut:
    """Remove one photo; a product's last photo cannot go (409): delete the product instead."""
    product = store.remove_image(product_id, image_id)
    if product is None:
        raise ApiError(404, "image_not_found", f"product {product_id} has no image {image_id}")
    return ProductOut.from_product(product)


@router.get("/products", response_model=list[ProductOut])
def list_products(
    store: StoreDep,
    wanted: QueryFilter,
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[ProductOut]:
    """A page of the catalog in id order, optionally one category and a price range."""
    return [ProductOut.from_product(p) for p in store.list_products(offset, limit, wanted)]


@router.get("/categories", response_model=list[CategoryOut])
def list_categories(store: StoreDep) -> list[CategoryOut]:
    """Every category in use, with its number of products: what a storefront's filter offers."""
    return [CategoryOut(name=name, products=n) for name, n in store.categories()]


@router.get("/products/{product_id}", response_model=ProductOut, responses={404: {"model": ErrorResponse}})
def get_product(store: StoreDep, product_id: ProductId) -> ProductOut:
    return ProductOut.from_product(require_product(store, product_id))


def _image_response(store: ProductStore, product: Product, image_id: int | None) -> FileResponse:
    image = next((i for i in product.images if image_id is None or i.id == image_id), None)
    if image is None:
        raise ApiError(404, "image_not_found", f"product {product.id} has no image {image_id}")
    try:
        path = store.image_file(image)
    except StoredPathError as exc:  # a damaged or edited row: never followed, never shown
        log.error("product %d image %d not served: %s", product.id, image.id, exc)
        message = f"image {image.id} of product {product.id} has a damaged file record; check the store"
        raise ApiError(500, "damaged_store", message) from exc
    if not path.is_file():  # gone from the store's disk (by hand, a lost volume): not a server fault
        log.warning("image %s of product %s: no file %s (lookalike index check)", image.id, product.id, path)
        raise ApiError(
            404, "image_file_missing", f"the file of image {image.id} of product {product.id} is missing"
        )
    media_type = _MEDIA_TYPES.get(path.suffix.lstrip("."), "application/octet-stream")
    # content-addressed files never change: let browsers and proxies keep them
    return FileResponse(path, media_type=media_type, headers={"Cache-Control": "public, max-age=86400"})


@router.get(
    "/products/{product_id}/image", response_class=FileResponse, responses={404: {"model": ErrorResponse}}
)
def get_product_image(store: StoreDep, product_id: ProductId) -> FileResponse:
    return _image_response(store, require_product(store, product_id), None)


@router.get(
    "/products/{product_id}/images/{image_id}",
    response_class=FileResponse,
    responses={404: {"model": ErrorResponse}},
)
def get_image(store: StoreDep, product_id: ProductId, image_id: ImageId) -> FileResponse:
    return _image_response(store, require_product(store, product_id), image_id)


@router.delete(
    "/products/{product_id}",
    status_code=204,
    dependencies=[ApiKeyDep],
    responses={code: {"model": ErrorResponse} for code in (401, 403, 404)},
)
def delete_product(store: StoreDep, product_id: ProductId) -> Response:
    if not store.remove_product(product_id):
        raise ProductNotFound(product_id)
    return Response(status_code=204)
