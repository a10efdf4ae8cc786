"""One JSON error shape for every 4xx/5xx: ``{"error": {"code", "message", optional "details"}}``."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)


class ApiError(HTTPException):
    """An HTTP error with a stable machine-readable ``code`` next to its human message."""

    def __init__(
        self,
        status_code: int,
        code: str,
        message: str,
        headers: dict[str, str] | None = None,
        details: list[Any] | None = None,
    ):
        detail = {"code": code, "message": message, **({"details": details} if details is not None else {})}
        super().__init__(status_code, detail=detail, headers=headers)


def error_body(code: str, message: str, details: list[Any] | None = None) -> dict[str, dict[str, Any]]:
    """The error shape; ``details`` (optional) lists what a client may act on, e.g. the conflicts."""
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return {"error": error}


def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
    if isinstance(exc.detail, dict) and "code" in exc.detail:
        body = error_body(exc.detail["code"], exc.detail["message"], exc.detail.get("details"))
    else:
        phrase = HTTPStatus(exc.status_code).phrase
        body = error_body(phrase.lower().replace(" ", "_"), str(exc.detail or phrase))
    return JSONResponse(body, status_code=exc.status_code, headers=getattr(exc, "headers", None))


def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    problems = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        problems.append(f"{where}: {err.get('msg')}")
    return JSONResponse(error_body("invalid_request", "; ".join(problems)), status_code=422)


def _unhandled(_: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    return JSONResponse(error_body("internal_error", "internal server error"), status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unhandled)
