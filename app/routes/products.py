"""The catalog over HTTP: add (POST /index), read, list, update, images, delete.

The writes that embed photos are use cases of their own (app/usecases/); a store's refusal
rises from them and the store to one handler (app/errors.py)."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, Request, Response, UploadFile
from fastapi.responses import FileResponse

from app import usecases
from app.deps import MAX_ID, ApiKeyDep, ImageId, ProductId, QueryFilter, StoreDep
from app.errors import ApiError, ProductNotFound, require_product
from app.forms import json_object_field
from app.schemas import (
    AddedProductOut,
    BatchAdded,
    Category,
    CategoryOut,
    Price,
    ProductFields,
    ProductOut,
    ProductUpdate,
    Sku,
    Title,
    error_responses,
)
from app.usecases import PhotosDep
from index import NewProduct, Product, ProductStore
from index.images import StoredPathError

log = logging.getLogger(__name__)
router = APIRouter(tags=["products"])
_MEDIA_TYPES = {
    "jpg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "gif": "image/gif",
    "bmp": "image/bmp",
}
_WRITE_ERRORS = error_responses(400, 401, 403, 409, 413, 415, 422)
_UPDATE_ERRORS = error_responses(401, 403, 404, 409, 422)
_IMAGE_ERRORS = error_responses(400, 401, 403, 404, 409, 413, 415, 422)


@router.post(
    "/index",
    status_code=201,
    response_model=AddedProductOut,
    dependencies=[ApiKeyDep],
    responses=_WRITE_ERRORS,
)
async def add_product(
    store: StoreDep,
    photos: PhotosDep,
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
    product = NewProduct(sku, title, category or None, price, attrs)
    result = await usecases.add_product(store, photos, product, image)
    return AddedProductOut.from_added(result.products[0], result.near_duplicates)


@router.post(
    "/index/batch",
    status_code=201,
    response_model=BatchAdded,
    dependencies=[ApiKeyDep],
    responses=_WRITE_ERRORS,
)
async def add_products(
    store: StoreDep,
    photos: PhotosDep,
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
    return BatchAdded.from_result(await usecases.add_batch(store, photos, manifest, image))


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
    photos: PhotosDep,
    product_id: ProductId,
    image: Annotated[list[UploadFile], File(description="the photos: repeat the field for several")],
) -> AddedProductOut:
    """POST adds photos to a product, PUT replaces all of them in one step; searches match any."""
    replace = request.method == "PUT"
    return AddedProductOut.from_added(*await usecases.set_images(store, photos, product_id, image, replace))


@router.delete(
    "/products/{product_id}/images/{image_id}",
    response_model=ProductOut,
    dependencies=[ApiKeyDep],
    responses=error_responses(401, 403, 404, 409),
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


@router.get("/products/{product_id}", response_model=ProductOut, responses=error_responses(404))
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


@router.get("/products/{product_id}/image", response_class=FileResponse, responses=error_responses(404))
def get_product_image(store: StoreDep, product_id: ProductId) -> FileResponse:
    return _image_response(store, require_product(store, product_id), None)


@router.get(
    "/products/{product_id}/images/{image_id}", response_class=FileResponse, responses=error_responses(404)
)
def get_image(store: StoreDep, product_id: ProductId, image_id: ImageId) -> FileResponse:
    return _image_response(store, require_product(store, product_id), image_id)


@router.delete(
    "/products/{product_id}",
    status_code=204,
    dependencies=[ApiKeyDep],
    responses=error_responses(401, 403, 404),
)
def delete_product(store: StoreDep, product_id: ProductId) -> Response:
    if not store.remove_product(product_id):
        raise ProductNotFound(product_id)
    return Response(status_code=204)
