"""GET /health: liveness plus what is loaded: device, encoder, catalog size."""

from __future__ import annotations

from fastapi import APIRouter

from app.deps import EmbedderDep, StoreDep
from app.schemas import EncoderInfo, HealthResponse

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
