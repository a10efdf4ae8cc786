"""POST /search: the shopper's photo in, the most similar products out."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from app.deps import ProductId, QueryFilter, RuntimeDep, SettingsDep, StoreDep, ThresholdsDep
from app.errors import ApiError, ProductNotFound
from app.forms import json_object_field
from app.json_answer import json_answer
from app.schemas import ErrorResponse, SearchResponse, SearchResult
from app.search_request import MAX_K, SearchParams, openapi_extra, read_search
from app.uploads import RETRY_AFTER, search_upload
from encoder import Crop
from index import ProductStore, QueryTimeout, SearchFilter, TextHit, TextQueryError
from index.fusion import reciprocal_rank_fusion
from index.text_query import text_words

router = APIRouter(tags=["search"])
FUSION_DEPTH = 50  # each ranking contributes this many candidates (at least 2k) to the fusion

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (400, 413, 415, 422, 503)
}


def _check_words(q: str) -> None:
    """422 for a text query the store will not run (too many words), before any other work."""
    try:
        text_words(q)
    except TextQueryError as exc:
        raise ApiError(422, "invalid_query", str(exc)) from exc


def _text_hits(store: ProductStore, q: str, k: int, wanted: SearchFilter, timeout_ms: float) -> list[TextHit]:
    """The store's text search, its refusals as HTTP answers: 422 for too many words, 503 with
    ``Retry-After`` for a query stopped at the time limit (fewer or longer words are quicker)."""
    _check_words(q)
    try:
        return store.text_search(q, k, wanted, timeout_ms / 1000)
    except QueryTimeout as exc:
        raise ApiError(
            503,
            "query_timeout",
            f"the text query took longer than {timeout_ms:g} ms; fewer or longer words are quicker",
            headers=RETRY_AFTER,
        ) from exc


def _search_options(params: SearchParams) -> tuple[SearchParams, SearchFilter, Crop | None]:
    """The search's filter and crop; 422 for an inconsistent filter, a bad crop or too many words
    (checked before the photo is read)."""
    try:
        wanted = SearchFilter(
            params.category or None,
            params.min_price,
            params.max_price,
            json_object_field(params.attributes, "attributes", "invalid_filter"),
        )
    except ValueError as exc:
        raise ApiError(422, "invalid_filter", str(exc)) from exc
    try:
        region = Crop.parse(params.crop) if params.crop else None
    except ValueError as exc:
        raise ApiError(422, "invalid_crop", str(exc)) from exc
    if params.q:
        _check_words(params.q)
    return params, wanted, region


@router.post(
    "/search",
    response_model=SearchResponse,
    responses=_ERRORS,
    openapi_extra=openapi_extra(),
)
async def search(request: Request, runtime: RuntimeDep, settings: SettingsDep) -> Response:
    """The ``k`` products whose photos look most like the uploaded one, optionally filtered; with
    ``q`` as well, image similarity and text relevance are fused by reciprocal rank. Where the
    store keeps local features, the photos that match the upload geometrically come first
    (``inliers``, docs/MATCHING.md).

    The photo comes as the field ``image`` of a multipart form (the parameters as fields), or as
    the whole body with ``Content-Type: image/jpeg``, ``image/png`` or ``image/webp`` (the
    parameters in the query string)."""
    started = time.perf_counter()
    data, (params, wanted, region) = await read_search(request, settings.max_upload_bytes, _search_options)
    store, thresholds, q, k = runtime.store, runtime.thresholds, params.q, params.k
    depth = max(2 * k, FUSION_DEPTH) if q else k
    found = await search_upload(runtime.embedder, data, depth, wanted, region, runtime.rerank)
    scored = [(h, h.score) for h in found if h.verified or h.score >= params.min_score]
    hits = [h for h, _ in scored]
    if not q:
        results = [SearchResult.from_hit(h, thresholds, s) for h, s in scored]
        return json_answer(
            SearchResponse(results=results, took_ms=_ms_since(started), encoder_fingerprint=store.fingerprint)
        )
    texts = await run_in_threadpool(_text_hits, store, q, depth, wanted, settings.text_query_timeout_ms)
    by_image = {h.product.id: h for h in hits}
    by_text = {t.product.id: t.product for t in texts}
    fused = reciprocal_rank_fusion([list(by_image), list(by_text)])[:k]
    results = [
        SearchResult.from_hit(by_image[pid], thresholds, score)
        if pid in by_image
        else SearchResult.from_product(by_text[pid], score)
        for pid, score in fused
    ]
    return json_answer(
        SearchResponse(
            results=results,
            ranking="fused",
            took_ms=_ms_since(started),
            encoder_fingerprint=store.fingerprint,
        )
    )


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


@router.get(
    "/search", response_model=SearchResponse, responses={c: {"model": ErrorResponse} for c in (422, 503)}
)
def text_search(
    store: StoreDep,
    settings: SettingsDep,
    q: Annotated[
        str, Query(min_length=1, max_length=200, description="words in titles, categories, attributes")
    ],
    wanted: QueryFilter,
    k: Annotated[int, Query(ge=1, le=MAX_K)] = 10,
) -> SearchResponse:
    """Text search (SQLite FTS5, bm25): every word must match; words of two letters or more match
    as prefixes too ("dr" finds "dress"); at most 16 different words."""
    started = time.perf_counter()
    found = _text_hits(store, q, k, wanted, settings.text_query_timeout_ms)
    results = [SearchResult.from_product(t.product, t.score) for t in found]
    return SearchResponse(results=results, ranking="text", took_ms=_ms_since(started))


@router.get(
    "/products/{product_id}/similar",
    response_model=SearchResponse,
    responses={code: {"model": ErrorResponse} for code in (404, 422)},
)
def similar(
    store: StoreDep,
    thresholds: ThresholdsDep,
    product_id: ProductId,
    wanted: QueryFilter,
    k: Annotated[int, Query(ge=1, le=MAX_K, description="how many products to return")] = 10,
) -> SearchResponse:
    """More like this: the products most similar to any photo of a stored product (no upload)."""
    started = time.perf_counter()
    hits = store.similar(product_id, k, wanted)
    if hits is None:
        raise ProductNotFound(product_id)
    results = [SearchResult.from_hit(h, thresholds) for h in hits]
    return SearchResponse(results=results, took_ms=_ms_since(started), encoder_fingerprint=store.fingerprint)
