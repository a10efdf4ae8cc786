"""A response model as a JSON answer, serialised in one pass.

FastAPI's own path for a returned model dumps it to Python objects, validates those against the
``response_model`` again, turns them into JSON-able objects and runs ``json.dumps`` over the
result: four walks over every search result. A route on the hot path returns
``json_answer(model)`` instead: pydantic's Rust serialiser writes the bytes once. The documented
schema is the same (the route keeps its ``response_model``), and so are the bytes a client
parses: the same fields, compact, UTF-8.
"""

from __future__ import annotations

from fastapi.responses import Response
from pydantic import BaseModel


def json_answer(model: BaseModel, status_code: int = 200) -> Response:
    """``model`` as an ``application/json`` response."""
    return Response(model.model_dump_json().encode(), status_code, media_type="application/json")
