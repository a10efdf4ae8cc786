"""Edges of every request, whatever the route: the request id, the metric labels, the headers."""

from __future__ import annotations

import asyncio
import re

from fastapi.testclient import TestClient
from starlette.types import Message, Receive, Scope, Send

from app.request_id import RequestId


def _id_answered_for(given: bytes) -> str:
    """The X-Request-ID the middleware answers when the client sent ``given``."""
    sent: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/", "headers": [(b"x-request-id", given)]}
    asyncio.run(RequestId(app)(scope, receive, send))
    return dict(sent[0]["headers"])[b"x-request-id"].decode("latin-1")


def test_a_request_id_is_echoed_only_when_all_of_it_is_sane() -> None:
    assert _id_answered_for(b"abc-123") == "abc-123"
    for hostile in (b"abc-123\n", b"abc-123\nX-Admin: 1", b"abc-123 junk", b"abc\x00"):
        answered = _id_answered_for(hostile)
        assert answered != hostile.decode("latin-1") and re.fullmatch(r"[0-9a-f]{32}", answered), hostile


def test_unknown_http_methods_share_one_metric_label(client: TestClient) -> None:
    for i in range(40):  # a client inventing methods must not grow the label set
        client.request(f"X{i}PROBE", "/health")
    client.request("PATCH", "/health")
    text = client.get("/metrics").text
    assert "PROBE" not in text
    assert 'lookalike_requests_total{method="other",route="/health",status="405"} 40.0' in text
    assert 'lookalike_requests_total{method="PATCH",route="/health",status="405"} 1.0' in text
    assert 'lookalike_request_seconds_count{method="other",route="/health"} 40.0' in text
