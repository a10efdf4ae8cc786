"""The catalog over HTTP: add (POST /index), read, list, image files, delete."""

from __future__ import annotations

import json
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, File, Form, Query, Response, UploadFile
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from app.deps import ApiKeyDep, EmbedderDep, SettingsDep, StoreDep
from app.errors import ApiError
from app.schemas import ErrorResponse, ProductOut
from app.uploads import embed_upload, read_upload
from index import DuplicateSkuError, NewProduct, Product, ProductStore

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


def _parse_attributes(raw: str | None) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ApiError(422, "invalid_attributes", f"attributes must be a JSON object: {exc}") from exc
    if not isinstance(value, dict):
        raise ApiError(422, "invalid_attributes", 'attributes must be a JSON object, e.g. {"colour": "red"}')
    return value


def _get_or_404(store: ProductStore, product_id: int) -> Product:
    product = store.get_product(product_id)
    if product is None:
        raise ApiError(404, "product_not_found", f"no product with id {product_id}")
    return product


@router.post(
    "/index", status_code=201, response_model=ProductOut, dependencies=[ApiKeyDep], responses=_WRITE_ERRORS
)
async def add_product(
    store: StoreDep,
    embedder: EmbedderDep,
    settings: SettingsDep,
    image: Annotated[UploadFile, File(description="the product photo")],
    sku: Annotated[str, Form(min_length=1, max_length=128, description="unique stock-keeping unit")],
    title: Annotated[str, Form(min_length=1, max_length=500)],
    category: Annotated[str | None, Form(max_length=200)] = None,
    price: Annotated[float | None, Form(ge=0, le=1e9)] = None,
    attributes: Annotated[str | None, Form(description="JSON object of extra fields")] = None,
) -> ProductOut:
    """Add one product with its photo; the answer comes after the SQLite commit."""
    attrs = _parse_attributes(attributes)
    if await run_in_threadpool(store.get_by_sku, sku) is not None:
        raise ApiError(409, "duplicate_sku", f"a product with sku {sku!r} already exists")
    data = await read_upload(image, settings.max_upload_bytes)
    vector = await embed_upload(embedder, data)
    new = NewProduct(sku, title, category or None, price, attrs, (data,), np.asarray(vector)[None, :])
    try:
        product = await run_in_threadpool(store.add_product, new)
    except DuplicateSkuError as exc:  # lost a race with another add of the same sku
        raise ApiError(409, "duplicate_sku", str(exc)) from exc
    return ProductOut.from_product(product)


@router.get("/products", response_model=list[ProductOut])
def list_products(
    store: StoreDep,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    category: str | None = None,
) -> list[ProductOut]:
    return [ProductOut.from_product(p) for p in store.list_products(offset, limit, category)]


@router.get("/products/{product_id}", response_model=ProductOut, responses={404: {"model": ErrorResponse}})
def get_product(store: StoreDep, product_id: int) -> ProductOut:
    return ProductOut.from_product(_get_or_404(store, product_id))


def _image_response(store: ProductStore, product: Product, image_id: int | None) -> FileResponse:
    image = next((i for i in product.images if image_id is None or i.id == image_id), None)
    if image is None:
        raise ApiError(404, "image_not_found", f"product {product.id} has no image {image_id}")
    path = store.image_file(image)
    media_type = _MEDIA_TYPES.get(path.suffix.lstrip("."), "application/octet-stream")
    # content-addressed files never change: let browsers and proxies keep them
    return FileResponse(path, media_type=media_type, headers={"Cache-Control": "public, max-age=86400"})


@router.get(
    "/products/{product_id}/image", response_class=FileResponse, responses={404: {"model": ErrorResponse}}
)
def get_product_image(store: StoreDep, product_id: int) -> FileResponse:
    return _image_response(store, _get_or_404(store, product_id), None)


@router.get(
    "/products/{product_id}/images/{image_id}",
    response_class=FileResponse,
    responses={404: {"model": ErrorResponse}},
)
def get_image(store: StoreDep, product_id: int, image_id: int) -> FileResponse:
    return _image_response(store, _get_or_404(store, product_id), image_id)


@router.delete(
    "/products/{product_id}",
    status_code=204,
    dependencies=[ApiKeyDep],
    responses={code: {"model": ErrorResponse} for code in (401, 403, 404)},
)
def delete_product(store: StoreDep, product_id: int) -> Response:
    if not store.remove_product(product_id):
        raise ApiError(404, "product_not_found", f"no product with id {product_id}")
    return Response(status_code=204)
