"""Typed dependencies handing routes the heavy state created in the lifespan."""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Header, Path, Query, Request

from app.config import Settings
from app.dev_mode import keyless_writes, local_connection
from app.embedder import Embedder
from app.errors import ApiError
from app.runtime import Runtime
from index import ProductStore, SearchFilter
from index.rerank import RerankOptions
from index.thresholds import MatchThresholds


# The dependencies below do no blocking work, so they are ``async``: FastAPI runs a plain ``def``
# dependency in its thread pool, a hop per dependency per request that a busy server pays for.
async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_runtime(request: Request) -> AsyncIterator[Runtime]:
    """The encoder + store pair current when the request starts, leased until its answer is sent:
    a reload meanwhile (POST /admin/reload) never mixes the old pair with the new one."""
    runtime: Runtime = request.app.state.runtime
    with runtime.lease():
        yield runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def get_store(runtime: RuntimeDep) -> ProductStore:
    return runtime.store


async def get_embedder(runtime: RuntimeDep) -> Embedder:
    return runtime.embedder


async def get_thresholds(runtime: RuntimeDep) -> MatchThresholds | None:
    return runtime.thresholds


async def get_rerank(runtime: RuntimeDep) -> RerankOptions:
    return runtime.rerank


MAX_ID = 2**63 - 1  # SQLite's largest integer: a larger id is a 422, not a crash
ProductId = Annotated[int, Path(ge=1, le=MAX_ID, description="a product's id")]
ImageId = Annotated[int, Path(ge=1, le=MAX_ID, description="an image's id")]
SettingsDep = Annotated[Settings, Depends(get_settings)]
ThresholdsDep = Annotated[MatchThresholds | None, Depends(get_thresholds)]
StoreDep = Annotated[ProductStore, Depends(get_store)]
RerankDep = Annotated[RerankOptions, Depends(get_rerank)]
EmbedderDep = Annotated[Embedder, Depends(get_embedder)]


async def require_api_key(
    request: Request,
    settings: SettingsDep,
    x_api_key: Annotated[str | None, Header(description="one of LOOKALIKE_API_KEYS")] = None,
) -> None:
    """Writes need ``X-API-Key``: 401 without one, 403 with a wrong one or none configured."""
    keys = settings.keys
    if keyless_writes(settings):  # local development only: never over a connection from outside
        if local_connection(request.scope):
            return
        raise ApiError(
            403, "writes_disabled", "insecure_dev_mode takes writes without a key only on a loopback address"
        )
    if not keys:
        raise ApiError(
            403,
            "writes_disabled",
            "writes are disabled: no API key is configured; set LOOKALIKE_API_KEYS=<key> and restart",
        )
    if not x_api_key:
        raise ApiError(
            401,
            "missing_api_key",
            "this endpoint needs an X-API-Key header",
            headers={"WWW-Authenticate": "X-API-Key"},
        )
    if not any(hmac.compare_digest(x_api_key.encode(), k.encode()) for k in keys):
        raise ApiError(403, "invalid_api_key", "the X-API-Key is not valid")


ApiKeyDep = Depends(require_api_key)


async def query_filter(
    category: Annotated[str | None, Query(max_length=200, description="only this category")] = None,
    min_price: Annotated[float | None, Query(ge=0, description="only products at least this price")] = None,
    max_price: Annotated[float | None, Query(ge=0, description="only products at most this price")] = None,
) -> SearchFilter:
    """The metadata filter of a GET search, from its query parameters; 422 when inconsistent."""
    try:
        return SearchFilter(category or None, min_price, max_price)
    except ValueError as exc:
        raise ApiError(422, "invalid_filter", str(exc)) from exc


QueryFilter = Annotated[SearchFilter, Depends(query_filter)]
