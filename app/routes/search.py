"""POST /search: the shopper's photo in, the most similar products out."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, UploadFile
from starlette.concurrency import run_in_threadpool

from app.deps import EmbedderDep, SettingsDep, StoreDep
from app.schemas import ErrorResponse, SearchResponse, SearchResult
from app.uploads import embed_upload, read_upload

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
) -> SearchResponse:
    started = time.perf_counter()
    data = await read_upload(image, settings.max_upload_bytes)
    query = await embed_upload(embedder, data)  # (D,)
    hits = (await run_in_threadpool(store.search, query[None, :], k))[0]
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
