"""POST /search: the shopper's photo in, the most similar products out."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, UploadFile
from starlette.concurrency import run_in_threadpool

from app.deps import EmbedderDep, SettingsDep, StoreDep
from app.errors import ApiError
from app.forms import json_object_field
from app.schemas import ErrorResponse, SearchResponse, SearchResult
from app.uploads import embed_upload, read_upload
from index import SearchFilter

router = APIRouter(tags=["search"])
MAX_K = 100

_ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorResponse} for code in (400, 413, 415, 422)}


@router.post("/search", response_model=SearchResponse, responses=_ERRORS)
async def search(
    store: StoreDep,
    embedder: EmbedderDep,
    settings: SettingsDep,
    image: Annotated[UploadFile, File(description="the shopper's photo (JPEG, PNG, WebP, GIF or BMP)")],
    k: Annotated[int, Form(ge=1, le=MAX_K, description="how many products to return")] = 10,
    category: Annotated[str | None, Form(max_length=200, description="only this category")] = None,
    min_price: Annotated[float | None, Form(ge=0, description="only products at least this price")] = None,
    max_price: Annotated[float | None, Form(ge=0, description="only products at most this price")] = None,
    attributes: Annotated[
        str | None, Form(description='JSON object: attributes that must be equal, e.g. {"colour": "red"}')
    ] = None,
) -> SearchResponse:
    """The ``k`` products whose photos look most like the uploaded one, optionally filtered."""
    started = time.perf_counter()
    try:
        wanted = SearchFilter(
            category or None,
            min_price,
            max_price,
            json_object_field(attributes, "attributes", "invalid_filter"),
        )
    except ValueError as exc:
        raise ApiError(422, "invalid_filter", str(exc)) from exc
    data = await read_upload(image, settings.max_upload_bytes)
    query = await embed_upload(embedder, data)  # (D,)
    hits = (await run_in_threadpool(store.search, query[None, :], k, wanted))[0]
    results = [
        SearchResult(
            product_id=h.product.id,
            sku=h.product.sku,
            title=h.product.title,
            category=h.product.category,
            price=h.product.price,
            score=round(h.score, 6),
            image_url=f"/products/{h.product.id}/images/{h.image_id}",
            matched_image_id=h.image_id,
        )
        for h in hits
    ]
    return SearchResponse(results=results, took_ms=round((time.perf_counter() - started) * 1000, 2))
