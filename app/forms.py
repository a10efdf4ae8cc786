"""Form fields that carry JSON (attributes of a product, attribute filters of a search)."""

from __future__ import annotations

import json
from typing import Any

from app.errors import ApiError


def json_object_field(raw: str | None, name: str, code: str) -> dict[str, Any]:
    """``raw`` parsed as a JSON object ({} when absent); 422 with ``code`` otherwise."""
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ApiError(422, code, f"{name} must be a JSON object: {exc}") from exc
    if not isinstance(value, dict):
        raise ApiError(422, code, f'{name} must be a JSON object, e.g. {{"colour": "red"}}')
    return value
