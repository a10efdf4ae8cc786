"""What ``POST /search`` was sent: the photo and its parameters, from a multipart form or a raw body.

Two ways to send a photo, the same validation, limits and error answers:

- ``multipart/form-data`` (the storefront): the photo in the field ``image``, the parameters in
  fields beside it (and in the query string, which the fields override);
- the photo as the whole body, ``Content-Type: image/jpeg``, ``image/png`` or ``image/webp``,
  the parameters in the query string (a phone app or a proxy sends that: no form to build).

The form is parsed here rather than by FastAPI so that one route takes both, and so that a photo
the size limit admits stays in memory: Starlette spools an upload over 1 MiB to a temporary file
and reads it back through its thread pool, a disk write and a thread hop for every large photo.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from app.errors import ApiError
from app.uploads import read_chunks, read_upload

T = TypeVar("T")
MAX_K = 100
RAW_TYPES = ("image/jpeg", "image/png", "image/webp")
FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")


class SearchParams(BaseModel):
    """The parameters of an image search, as form fields or query parameters (text, converted)."""

    model_config = ConfigDict(extra="ignore")

    k: int = Field(10, ge=1, le=MAX_K, description="how many products to return")
    category: str | None = Field(None, max_length=200, description="only this category")
    min_price: float | None = Field(None, ge=0, description="only products at least this price")
    max_price: float | None = Field(None, ge=0, description="only products at most this price")
    attributes: str | None = Field(
        None, description='JSON object: attributes that must be equal, e.g. {"colour": "red"}'
    )
    crop: str | None = Field(
        None, description="x,y,w,h as fractions of the photo: the region the shopper marked (0.2,0.1,0.5,0.6)"
    )
    min_score: float = Field(
        -1.0,
        ge=-1,
        le=1,
        description="leave out the results whose score (the cosine similarity, for a photo search) "
        "is below this; a result verified by local features is kept whatever its cosine",
    )
    q: str | None = Field(None, max_length=200, description="words too: the two rankings are fused (RRF)")


_NAMES = tuple(SearchParams.model_fields)
IMAGE_DESCRIPTION = "the shopper's photo (JPEG, PNG, WebP, GIF or BMP)"


class _InMemoryParser(MultiPartParser):
    """Starlette's multipart parser (its limits on parts and fields), keeping file parts in memory
    up to ``spool_max_size``; the body limit (app/body_limit.py) bounds the whole form anyway."""

    def __init__(self, request: Request, spool_max_size: int) -> None:
        super().__init__(request.headers, request.stream())
        self.spool_max_size = spool_max_size


def _validated(values: dict[str, Any], where: str) -> SearchParams:
    """The parameters, or the 422 FastAPI answers for a bad one (``where``: body or query)."""
    try:
        return SearchParams.model_validate(values)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": (where, *e["loc"])} for e in exc.errors(include_url=False)]
        ) from None


def _missing_image(message: str) -> RequestValidationError:
    return RequestValidationError(
        [{"type": "missing", "loc": ("body", "image"), "msg": message, "input": None}]
    )


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def _form(request: Request, kind: str, max_bytes: int) -> FormData:
    if kind != "multipart/form-data":
        return await request.form()  # urlencoded: no file can be in it, answered below as missing
    try:
        return await _InMemoryParser(request, max_bytes).parse()
    except MultiPartException as exc:
        raise ApiError(400, "bad_request", exc.message) from exc


async def read_search(
    request: Request, max_bytes: int, check: Callable[[SearchParams], T]
) -> tuple[bytes, T]:
    """(the photo's bytes, ``check(parameters)``): the parameters are validated, then checked by
    ``check`` (which raises the route's own answers), before the photo is read. 415 for a body that
    is neither a form nor a photo type, and the errors of ``read_upload``."""
    kind = media_type(request)
    if kind in RAW_TYPES:
        checked = check(_validated(dict(request.query_params), "query"))
        return await read_chunks(request.stream(), max_bytes), checked  # the raw body
    if kind not in FORM_TYPES:
        raise ApiError(
            415,
            "unsupported_media_type",
            "send the photo as multipart/form-data (field image) or as the request body with "
            f"Content-Type {', '.join(RAW_TYPES)}; got {kind[:100] or 'no Content-Type'}",
        )
    form = await _form(request, kind, max_bytes)
    try:
        fields = {n: v for n in _NAMES if isinstance(v := form.get(n), str) and v != ""}
        params = _validated({**request.query_params, **fields}, "body")
        image = form.get("image")
        if image is None:
            raise _missing_image("Field required")
        if not isinstance(image, UploadFile):
            raise _missing_image("Value error, Expected UploadFile, received: <class 'str'>")
        checked = check(params)
        return await read_upload(image, max_bytes), checked
    finally:
        await form.close()


def _plain(prop: dict[str, Any]) -> dict[str, Any]:
    """A property's schema without its ``null`` alternative (a missing field is the null) and title."""
    kept = {k: v for k, v in prop.items() if k not in ("anyOf", "title")}
    alternatives = [a for a in prop.get("anyOf", ()) if a.get("type") != "null"]
    return {**kept, **(alternatives[0] if len(alternatives) == 1 else {})}


def openapi_extra() -> dict[str, Any]:
    """The request the route documents: both content types, and the parameters in the query."""
    properties = {n: _plain(p) for n, p in SearchParams.model_json_schema()["properties"].items()}
    form = {
        "type": "object",
        "required": ["image"],
        "properties": {
            "image": {"type": "string", "format": "binary", "description": IMAGE_DESCRIPTION},
            **properties,
        },
    }
    photo = {"schema": {"type": "string", "format": "binary", "description": IMAGE_DESCRIPTION}}
    parameters = [
        {
            "name": name,
            "in": "query",
            "required": False,
            "description": prop.get("description", "")
            + " (with a raw photo body; a form field overrides it)",
            "schema": {k: v for k, v in prop.items() if k != "description"},
        }
        for name, prop in properties.items()
    ]
    return {
        "parameters": parameters,
        "requestBody": {
            "required": True,
            "content": {"multipart/form-data": {"schema": form}, **{t: photo for t in RAW_TYPES}},
        },
    }
