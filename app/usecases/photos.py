"""A write's uploaded photos, read and embedded together so they share encoder batches."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Annotated

import numpy as np
from fastapi import Depends, UploadFile

from app.deps import EmbedderDep, SettingsDep
from app.embedder import Embedder
from app.errors import ApiError
from app.schemas import MAX_IMAGES
from app.uploads import embed_and_describe, read_upload
from encoder.local_features import LocalFeatures


@dataclass(frozen=True)
class EmbeddedPhotos:
    images: tuple[bytes, ...]
    vectors: np.ndarray  # (N, D)
    features: tuple[LocalFeatures | None, ...] | None  # for the geometric re-ranking; None: off


@dataclass(frozen=True)
class PhotoEmbedder:
    """The encoder, the upload size limit, and whether the store keeps local features (for the
    geometric re-ranking): what a write needs to turn its uploads into a product's photos."""

    embedder: Embedder
    max_bytes: int
    local_features: bool

    async def embed(self, uploads: list[UploadFile], limit: int = MAX_IMAGES) -> EmbeddedPhotos:
        """Read and embed every upload; with ``local_features``, find those of each photo meanwhile.
        422 for none or more than ``limit``; the upload's own refusals (413, 415, ...) as they come."""
        if not 1 <= len(uploads) <= limit:
            raise ApiError(422, "invalid_request", f"send between 1 and {limit} images")
        data = [await read_upload(u, self.max_bytes) for u in uploads]
        keep = self.local_features
        done = await asyncio.gather(*(embed_and_describe(self.embedder, d, keep) for d in data))
        vectors = np.stack([np.asarray(v) for v, _ in done])
        return EmbeddedPhotos(tuple(data), vectors, tuple(f for _, f in done) if keep else None)


async def get_photo_embedder(embedder: EmbedderDep, settings: SettingsDep) -> PhotoEmbedder:
    """Photos get local features when the store keeps a local index (whatever this server's
    search-side override says), so the index stays whole."""
    keep = embedder.store is not None and embedder.store.local.ready
    return PhotoEmbedder(embedder, settings.max_upload_bytes, keep)


PhotosDep = Annotated[PhotoEmbedder, Depends(get_photo_embedder)]
