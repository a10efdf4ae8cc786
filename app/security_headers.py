"""Headers that keep browsers from misreading or framing what the service sends.

Every answer: ``X-Content-Type-Options: nosniff`` (a stored photo or a JSON error is never run as a
script or page) and ``X-Frame-Options: DENY`` (no other site frames the admin page to trick a click).
The storefront and admin pages also get ``PAGE_POLICY``, a Content-Security-Policy that allows only
this origin's own files: the pages hold no inline script or style (tests/app/test_request_edges.py
checks), so an injected one would not run.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

PAGE_POLICY = "; ".join(
    (
        "default-src 'self'",
        "img-src 'self' blob:",  # blob: the storefront's preview of the shopper's own photo
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
EVERY_ANSWER = {"x-content-type-options": "nosniff", "x-frame-options": "DENY"}


class AnswerHeaders:
    """ASGI middleware adding fixed ``headers`` (by default ``EVERY_ANSWER``) to each HTTP response
    that does not set them itself."""

    def __init__(self, app: ASGIApp, headers: Mapping[str, str] = EVERY_ANSWER) -> None:
        self.app, self.headers = app, dict(headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self.headers.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)
