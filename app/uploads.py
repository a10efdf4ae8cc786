"""Reading an uploaded photo safely and turning image errors into HTTP answers."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

import numpy as np
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from app.batching import Overloaded
from app.embedder import Embedder
from app.errors import ApiError
from encoder import Crop, ImageDecodeError
from encoder.local_features import LocalFeatures
from index import SearchFilter, SearchHit
from index.rerank import RerankOptions, rerank

RETRY_AFTER = {"Retry-After": "1"}
_STATUS = {
    "unsupported": (415, "unsupported_media_type"),
    "too_large": (413, "image_too_large"),
    "shape": (422, "invalid_image"),  # a side too short or too thin for its length: not too large
    "crop": (422, "invalid_crop"),
}


async def read_upload(upload: UploadFile, max_bytes: int) -> bytes:
    """The upload's bytes, read in chunks; 413 as soon as it passes ``max_bytes``, 400 when empty."""

    async def pieces() -> AsyncIterator[bytes]:
        while chunk := await upload.read(1024 * 1024):
            yield chunk

    return await read_chunks(pieces(), max_bytes)


async def read_chunks(pieces: AsyncIterator[bytes], max_bytes: int) -> bytes:
    """An image's bytes as they arrive (an upload's chunks, or a raw request body): 413 as soon as
    they pass ``max_bytes``, 400 when there are none."""
    chunks, size = [], 0
    async for chunk in pieces:
        size += len(chunk)
        if size > max_bytes:
            raise ApiError(413, "payload_too_large", f"the image exceeds {max_bytes} bytes")
        chunks.append(chunk)
    if size == 0:
        raise ApiError(400, "empty_upload", "the uploaded image is empty (0 bytes)")
    return b"".join(chunks)


@contextmanager
def _as_http_errors() -> Iterator[None]:
    """Unusable images become 413/415/422, never a 500; a full queue (images decoding count too) or
    a timeout becomes 503 with Retry-After (backpressure: clients slow down, memory stays bounded)."""
    try:
        yield
    except ImageDecodeError as exc:
        status, code = _STATUS.get(exc.kind, (422, "invalid_image"))
        raise ApiError(status, code, str(exc)) from exc
    except Overloaded as exc:
        raise ApiError(503, "overloaded", f"the service is busy ({exc}); retry shortly", RETRY_AFTER) from exc


async def embed_upload(embedder: Embedder, data: bytes, crop: Crop | None = None) -> np.ndarray:
    """The (D,) embedding of validated bytes."""
    with _as_http_errors():
        return await embedder.embed_bytes(data, crop)


async def embed_and_describe(
    embedder: Embedder, data: bytes, local_features: bool
) -> tuple[np.ndarray, LocalFeatures | None]:
    """The (D,) embedding of validated bytes and, when asked, their local features (both at once)."""
    if not local_features:
        return await embed_upload(embedder, data), None
    with _as_http_errors():
        vector, features = await asyncio.gather(embedder.embed_bytes(data), embedder.local_features(data))
    return vector, features


async def search_upload(
    embedder: Embedder,
    data: bytes,
    k: int,
    filter: SearchFilter | None = None,
    crop: Crop | None = None,
    reranking: RerankOptions | None = None,
) -> list[SearchHit]:
    """The top-``k`` products for validated bytes, searched together with concurrent requests.
    With ``reranking`` on and a local index in the store, the products the local index names join
    the global ones and the first few are verified geometrically (``index.rerank``; the query's
    local features are found while the encoder runs, the rest in a worker thread) before the first
    ``k`` are kept. Otherwise no local feature is found or read."""
    store = embedder.store
    with _as_http_errors():
        if reranking is None or not reranking.enabled or store is None or not store.local.ready:
            return (await embedder.search_bytes(data, k, filter, crop))[1]
        features, (vector, hits) = await asyncio.gather(
            embedder.local_features(data, crop),
            embedder.search_bytes(data, max(k, reranking.k), filter, crop),
        )
    done = await run_in_threadpool(
        rerank,
        hits,
        features,
        store.local,
        store.local_features,
        functools.partial(store.image_hits, query=vector, filter=filter),
        reranking,
    )
    return done.hits[:k]
