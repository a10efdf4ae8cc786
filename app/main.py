"""The FastAPI application: lifespan loads encoder + store, routers serve them, static/ the page."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool

from app.body_limit import BodySizeLimit
from app.config import Settings
from app.embedder import Embedder
from app.errors import install_error_handlers
from app.metrics import Metrics, RequestMetrics
from app.request_id import RequestId
from app.routes import health, products, search
from encoder import encoder_fingerprint, load_encoder, pick_device
from index import ProductStore
from index.calibration import load as load_thresholds

log = logging.getLogger("lookalike")
STATIC_DIR = Path(__file__).parent / "static"
FORM_OVERHEAD_BYTES = 64 * 1024  # multipart boundaries and the text fields next to the image


def _load(settings: Settings, metrics: Metrics) -> tuple[Embedder, ProductStore]:
    device = pick_device(settings.device)
    encoder = load_encoder(settings.encoder_path, map_location=device)
    store = ProductStore(
        settings.store_dir,
        encoder_fingerprint(encoder),
        encoder.embed_dim,
        float16=settings.index_float16,
        duplicate_threshold=settings.duplicate_threshold,
        duplicate_policy=settings.duplicate_policy,
    )
    embedder = Embedder(
        encoder,
        store,
        settings.max_batch_size,
        settings.max_wait_ms,
        settings.max_image_pixels,
        on_batch=metrics.batch_size.observe,
        max_queue=settings.max_queue,
        timeout_s=settings.request_timeout_s,
    )
    metrics.encoder.info({"fingerprint": encoder_fingerprint(encoder), "arch": encoder.config.arch})
    metrics.watch(lambda: embedder.batcher.queue_depth, store.count, store.vector_count)
    log.info(
        "loaded encoder %s (%s) on %s; store %s holds %d products; index %s",
        encoder_fingerprint(encoder)[:12],
        encoder.config.arch,
        device,
        settings.store_dir,
        store.count(),
        store.index_info()["description"],
    )
    return embedder, store


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    embedder, store = await run_in_threadpool(_load, app.state.settings, app.state.metrics)
    embedder.start()
    app.state.embedder, app.state.store = embedder, store
    app.state.thresholds = load_thresholds(store)
    if app.state.thresholds is None:
        log.warning(
            "the store has no match calibration: results carry no match label (lookalike index calibrate)"
        )
    app.state.ready = True
    try:
        yield
    finally:
        app.state.ready = False  # draining: load balancers stop sending before the store closes
        await embedder.close()
        await run_in_threadpool(store.close)


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
    app.add_middleware(RequestId)  # outermost: every answer carries the id, 413s and CORS too
    for module in (search, products, health):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/metrics", include_in_schema=False)
    def prometheus_metrics() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", include_in_schema=False)
    def storefront() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    return app
