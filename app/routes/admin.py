"""POST /admin/reload: switch to a newly trained encoder and the store built with it, live."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Body, Request

from app.deps import ApiKeyDep
from app.errors import ApiError
from app.schemas import ErrorResponse, ReloadRequest, ReloadResponse, ServedOut
from app.swap import ReloadRefused, Swapper

router = APIRouter(tags=["admin"])
_STATUS = {
    "encoder_not_found": 422,
    "store_not_found": 422,
    "invalid_encoder": 422,
    "invalid_store": 422,
    "encoder_mismatch": 409,
    "reload_in_progress": 409,
    "reload_needs_one_worker": 409,
}
_ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorResponse} for code in (401, 403, 409, 422)}


@router.post("/admin/reload", response_model=ReloadResponse, responses=_ERRORS, dependencies=[ApiKeyDep])
async def reload(request: Request, body: Annotated[ReloadRequest | None, Body()] = None) -> ReloadResponse:
    """Serve another encoder and its store from now on, without a restart.

    Both are loaded and checked first (the store must have been built with the encoder); only
    then does the server switch, in one step. Searches already running finish on the old pair,
    which is closed once they are done. Leave a field out to reload the configured path; a path
    given must lie under LOOKALIKE_RELOAD_ROOTS, and the database is always the configured one.
    """
    swapper: Swapper = request.app.state.swapper
    wanted = body or ReloadRequest()
    if wanted.database_url is not None:  # else a key holder could point the server at any host
        raise ApiError(
            422,
            "database_url_not_accepted",
            "a reload does not take a database_url: the catalog's database comes only from the "
            "server's configuration (LOOKALIKE_DATABASE_URL)",
        )
    try:
        report = await swapper.reload(
            Path(wanted.encoder_path) if wanted.encoder_path else None,
            Path(wanted.store_dir) if wanted.store_dir else None,
        )
    except ReloadRefused as exc:
        served = swapper.current
        raise ApiError(
            _STATUS.get(exc.code, 422),
            exc.code,
            f"{exc}; still serving encoder {served.fingerprint[:12]} from {served.store_dir}",
        ) from exc
    return ReloadResponse(
        changed=report.changed,
        previous=ServedOut(**asdict(report.previous)),
        current=ServedOut(**asdict(report.current)),
        drained=report.drained,
        took_ms=round(report.seconds * 1000, 2),
    )
