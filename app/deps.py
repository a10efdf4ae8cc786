"""Typed dependencies handing routes the heavy state created in the lifespan."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Header, Path, Request

from app.config import Settings
from app.embedder import Embedder
from app.errors import ApiError
from index import ProductStore
from index.calibration import MatchThresholds


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_store(request: Request) -> ProductStore:
    return request.app.state.store


def get_embedder(request: Request) -> Embedder:
    return request.app.state.embedder


def get_thresholds(request: Request) -> MatchThresholds | None:
    return getattr(request.app.state, "thresholds", None)


MAX_ID = 2**63 - 1  # SQLite's largest integer: a larger id is a 422, not a crash
ProductId = Annotated[int, Path(ge=1, le=MAX_ID, description="a product's id")]
ImageId = Annotated[int, Path(ge=1, le=MAX_ID, description="an image's id")]
SettingsDep = Annotated[Settings, Depends(get_settings)]
ThresholdsDep = Annotated[MatchThresholds | None, Depends(get_thresholds)]
StoreDep = Annotated[ProductStore, Depends(get_store)]
EmbedderDep = Annotated[Embedder, Depends(get_embedder)]


def require_api_key(
    settings: SettingsDep,
    x_api_key: Annotated[str | None, Header(description="one of LOOKALIKE_API_KEYS")] = None,
) -> None:
    """Writes need ``X-API-Key``: 401 without one, 403 with a wrong one or none configured."""
    keys = settings.keys
    if not keys and settings.insecure_dev_mode:
        return  # local development only: the settings refuse this mode on a public address
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
