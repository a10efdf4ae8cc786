"""One JSON error shape for every 4xx/5xx: ``{"error": {"code", "message", optional "details"}}``;
and the store's refusals as HTTP answers, each built here once."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.schemas import NearDuplicateOut
from index import Product, ProductStore
from index.records import (
    DuplicateSkuError,
    LastImageError,
    NearDuplicateError,
    StoreError,
    TooManyImagesError,
)

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


class ProductNotFound(ApiError):
    """404 ``product_not_found``: no product has the id the request names."""

    def __init__(self, product_id: int) -> None:
        super().__init__(404, "product_not_found", f"no product with id {product_id}")


class DuplicateSku(ApiError):
    """409 ``duplicate_sku``; ``skus`` (the details) names the skus at fault where a request holds
    several products (POST /index/batch)."""

    def __init__(self, message: str, skus: list[str] | None = None) -> None:
        super().__init__(409, "duplicate_sku", message, details=skus)


def require_product(store: ProductStore, product_id: int) -> Product:
    """The product with ``product_id``; ``ProductNotFound`` (404) when there is none."""
    product = store.get_product(product_id)
    if product is None:
        raise ProductNotFound(product_id)
    return product


def store_error_answer(exc: StoreError) -> ApiError | None:
    """The HTTP answer to a refusal of the store, its message the error's own. None for an error no
    request can cause (``EncoderMismatchError`` comes from opening a store; POST /admin/reload
    answers it itself): that one stays a server fault, a 500."""
    match exc:
        case DuplicateSkuError():
            return DuplicateSku(str(exc))
        case NearDuplicateError():
            details = [NearDuplicateOut.from_record(d).model_dump() for d in exc.duplicates]
            return ApiError(409, "near_duplicate", str(exc), details=details)
        case LastImageError():
            return ApiError(409, "last_image", str(exc))
        case TooManyImagesError():
            return ApiError(422, "too_many_images", str(exc))
    return None


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


async def _store_error(request: Request, exc: StoreError) -> JSONResponse:
    answer = store_error_answer(exc)
    if answer is None:
        raise exc  # on to _unhandled, as any other fault of the server
    return _http_error(request, answer)


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
    app.add_exception_handler(StoreError, _store_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unhandled)
