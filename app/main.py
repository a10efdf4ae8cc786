"""The FastAPI application: lifespan loads encoder + store, routers serve them, static/ the page."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector

from app.body_limit import BodySizeLimit
from app.config import Settings
from app.dev_mode import DevModeGuard
from app.errors import install_error_handlers
from app.memory import release_periodically
from app.metrics import Metrics, RequestMetrics
from app.request_id import RequestId
from app.routes import admin, health, products, search
from app.security_headers import EVERY_ANSWER, PAGE_POLICY, AnswerHeaders
from app.swap import Swapper
from app.workers import WORKER_HEADER, WorkerLabelled, worker_id

log = logging.getLogger("lookalike")
STATIC_DIR = Path(__file__).parent / "static"
FORM_OVERHEAD_BYTES = 64 * 1024  # multipart boundaries and the text fields next to the image


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    dev_guard = DevModeGuard(app.state.settings)  # raises: writes without a key on a public socket
    swapper = Swapper(app.state, app.state.settings, app.state.metrics)
    await swapper.start()  # app.state.runtime: the encoder, the store and its thresholds
    app.state.swapper = swapper
    app.state.ready = True
    dev_guard.watch()  # the sockets uvicorn binds only after this startup
    trimmer = asyncio.create_task(release_periodically(), name="malloc-trim")  # app/memory.py: why
    try:
        yield
    finally:
        dev_guard.stop()
        app.state.ready = False  # draining: load balancers stop sending before the store closes
        trimmer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await trimmer
        await swapper.stop()


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; the encoder and store are loaded when it starts (lifespan)."""
    settings = settings or Settings()
    app = FastAPI(
        title="lookalike",
        summary="Visual product search: upload a photo, get the most similar products.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.ready = False
    app.state.metrics = metrics = Metrics()
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_upload_bytes + FORM_OVERHEAD_BYTES)
    if settings.origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["X-API-Key", "X-Request-ID", "Content-Type"],
            expose_headers=["X-Request-ID", "Retry-After"],
        )
    app.add_middleware(RequestMetrics, metrics=metrics)
    exposed: Collector = metrics.registry
    answer_headers = dict(EVERY_ANSWER)
    if settings.workers > 1:  # one of several processes on the port (app/workers.py)
        exposed = WorkerLabelled(metrics.registry, worker_id())
        answer_headers[WORKER_HEADER.lower()] = worker_id()  # which worker gave the answer
    app.add_middleware(AnswerHeaders, headers=answer_headers)
    app.add_middleware(RequestId)  # outermost: every answer carries the id, 413s and CORS too
    for module in (search, products, health, admin):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/metrics", include_in_schema=False)
    def prometheus_metrics() -> Response:
        return Response(generate_latest(exposed), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", include_in_schema=False)
    def storefront() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers={"Content-Security-Policy": PAGE_POLICY})

    @app.get("/admin", include_in_schema=False)
    def admin_page() -> FileResponse:
        """The shop admin's page; it only reads until the admin enters an API key."""
        return FileResponse(STATIC_DIR / "admin.html", headers={"Content-Security-Policy": PAGE_POLICY})

    return app
