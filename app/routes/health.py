"""GET /health: liveness plus what is loaded (device, encoder, catalog size); GET /ready: readiness."""

from __future__ import annotations

from fastapi import APIRouter, Request

from app.deps import EmbedderDep, StoreDep
from app.errors import ApiError
from app.schemas import EncoderInfo, ErrorResponse, HealthResponse, ReadyResponse

router = APIRouter(tags=["health"])


@router.get("/health", response_model=HealthResponse)
def health(store: StoreDep, embedder: EmbedderDep) -> HealthResponse:
    encoder = embedder.encoder
    cfg = encoder.config
    return HealthResponse(
        status="ok",
        device=next(encoder.parameters()).device.type,
        index_device=store.index_device,
        index_type=store.index_type,
        encoder=EncoderInfo(
            fingerprint=store.fingerprint, arch=cfg.arch, image_size=cfg.image_size, embed_dim=cfg.embed_dim
        ),
        products=store.count(),
        vectors=store.vector_count(),
    )


@router.get(
    "/ready",
    response_model=ReadyResponse,
    response_model_exclude_none=True,
    responses={503: {"model": ErrorResponse}},
)
def ready(request: Request) -> ReadyResponse:
    """200 once the encoder and the store are loaded, 503 before and while shutting down. Status
    ``degraded`` (still 200: the catalog serves, and taking every replica out would be worse)
    while the vector index catches up with committed writes after a failure (a GPU error, a full
    disk under the snapshot): searches may miss the newest products until the retry succeeds."""
    if not getattr(request.app.state, "ready", False):
        raise ApiError(503, "not_ready", "the encoder and the store are not loaded (starting or stopping)")
    runtime = getattr(request.app.state, "runtime", None)
    problem = runtime.store.degraded if runtime is not None else None
    if problem:
        return ReadyResponse(status="degraded", detail=problem)
    return ReadyResponse(status="ready")
