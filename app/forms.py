"""Form fields that carry JSON (attributes of a product, attribute filters of a search)."""

from __future__ import annotations

from typing import Any

from app.errors import ApiError
from encoder.attributes import InvalidAttributes, parse_attributes


def json_object_field(raw: str | None, name: str, code: str) -> dict[str, Any]:
    """``raw`` parsed as a JSON object within the attribute limits (encoder.attributes: no NaN or
    infinity, bounded size and nesting), {} when absent; 422 with ``code`` otherwise."""
    if not raw:
        return {}
    try:
        return parse_attributes(raw, name)
    except InvalidAttributes as exc:
        raise ApiError(422, code, str(exc)) from exc
