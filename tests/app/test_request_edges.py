"""Edges of every request, whatever the route: the request id, the metric labels, the headers."""

from __future__ import annotations

import asyncio
import re
from html.parser import HTMLParser

import pytest
from fastapi.testclient import TestClient
from starlette.types import Message, Receive, Scope, Send

from app.main import STATIC_DIR
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


def test_every_answer_forbids_sniffing_and_framing(client: TestClient) -> None:
    product = client.get("/products", params={"limit": 1}).json()[0]
    answers = {
        "json": client.get("/health"),
        "error": client.get("/products/424242"),
        "unmatched": client.get("/no/such/page"),
        "photo": client.get(f"/products/{product['id']}/image"),
        "script": client.get("/static/js/storefront.js"),
        "storefront": client.get("/"),
        "admin": client.get("/admin"),
        "too large": client.post("/search", files={"image": ("x.jpg", bytes(900_000), "image/jpeg")}),
    }
    for name, r in answers.items():
        assert r.headers.get("x-content-type-options") == "nosniff", name
        assert r.headers.get("x-frame-options") == "DENY", name


def test_the_pages_carry_a_content_security_policy(client: TestClient) -> None:
    for page in ("/", "/admin"):
        policy = client.get(page).headers.get("content-security-policy", "")
        directives = {d.split()[0]: d.split()[1:] for d in policy.split(";") if d.strip()}
        assert directives.get("default-src") == ["'self'"], policy
        assert directives.get("frame-ancestors") == ["'none'"], policy
        assert directives.get("object-src") == ["'none'"], policy
        assert "'unsafe-inline'" not in policy and "'unsafe-eval'" not in policy
        assert "blob:" in directives.get("img-src", []), policy  # the storefront previews the chosen photo


class _InlineCode(HTMLParser):
    """Collects what a policy without 'unsafe-inline' would block in a page."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {name for name, _ in attrs}
        if tag == "style" or (tag == "script" and "src" not in names):
            self.found.append(f"<{tag}> inline")
        self.found += [f"<{tag} {n}=>" for n in names if n == "style" or n.startswith("on")]
        if any(v and v.strip().lower().startswith("javascript:") for _, v in attrs):
            self.found.append(f"<{tag}> javascript: URL")


@pytest.mark.parametrize("page", sorted(p.name for p in STATIC_DIR.glob("*.html")))
def test_the_pages_hold_no_inline_code_the_policy_would_block(page: str) -> None:
    parser = _InlineCode()
    parser.feed((STATIC_DIR / page).read_text())
    assert parser.found == []
