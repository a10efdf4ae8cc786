"""What a request searches with: one encoder's embedder, the store built with it and the store's
match thresholds, loaded together and switched together (``app/swap.py``).

A request leases the runtime that is current when it starts and keeps it to its end, so a
switch never hands one request the new encoder and the old store; the old runtime is closed
only once its last lease is returned.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from starlette.concurrency import run_in_threadpool

from app.config import Settings
from app.embedder import Embedder
from app.metrics import Metrics
from encoder import Encoder, encoder_fingerprint
from index import ProductStore
from index.rerank import RerankOptions
from index.thresholds import MatchThresholds
from index.thresholds import load as load_thresholds

log = logging.getLogger("lookalike")


def directory_identity(path: Path) -> tuple[int, int]:
    """(device, inode) of a directory: the same directory under any name or symlink."""
    st = os.stat(path)
    return st.st_dev, st.st_ino


@dataclass
class Runtime:
    """The embedder (encoder + micro-batcher), the store and its thresholds; leased per request."""

    encoder_path: Path
    store_dir: Path
    embedder: Embedder
    store: ProductStore
    thresholds: MatchThresholds | None
    store_identity: tuple[int, int]
    database_url: str = ""  # the PostgreSQL catalog; empty: SQLite in store_dir
    rerank: RerankOptions = field(default_factory=lambda: RerankOptions(enabled=False))
    _leases: int = field(default=0, init=False)
    _idle: asyncio.Event = field(default_factory=asyncio.Event, init=False)

    def __post_init__(self) -> None:
        self._idle.set()

    @property
    def fingerprint(self) -> str:
        return self.store.fingerprint

    @property
    def arch(self) -> str:
        return self.embedder.encoder.config.arch

    @property
    def leases(self) -> int:
        """Requests using this runtime right now."""
        return self._leases

    @contextmanager
    def lease(self) -> Iterator[Runtime]:
        """Hold the runtime for one request (call on the event loop)."""
        self._leases += 1
        self._idle.clear()
        try:
            yield self
        finally:
            self._leases -= 1
            if self._leases == 0:
                self._idle.set()

    async def drained(self) -> None:
        """Return once no request holds a lease."""
        await self._idle.wait()

    def start(self) -> None:
        """Start the micro-batcher on the running event loop."""
        self.embedder.start()

    def publish(self, metrics: Metrics) -> None:
        """Point the encoder info and the scrape-time gauges at this runtime."""
        metrics.encoder.info({"fingerprint": self.fingerprint, "arch": self.arch})
        metrics.watch(lambda: self.embedder.batcher.queue_depth, self.store.count, self.store.vector_count)

    async def close(self) -> None:
        """Stop the batcher, then write the final snapshot and close SQLite (off the event loop)."""
        await self.embedder.close()
        await run_in_threadpool(self.store.close)


def rerank_options(settings: Settings, stored: RerankOptions) -> RerankOptions:
    """The store's local matching options, with what the server's settings override."""
    enabled = stored.enabled if settings.rerank == "store" else settings.rerank == "on"
    return replace(
        stored,
        enabled=enabled,
        k=settings.rerank_k or stored.k,
        budget_ms=settings.rerank_budget_ms or stored.budget_ms,
    )


def open_runtime(
    settings: Settings,
    encoder: Encoder,
    encoder_path: Path,
    store_dir: Path,
    metrics: Metrics,
    database_url: str | None = None,
) -> Runtime:
    """Open ``store_dir`` (and the PostgreSQL catalog at ``database_url``, by default the
    configured one) for ``encoder``; blocking: call off the event loop.

    Raises ``EncoderMismatchError`` when the store was built with another encoder; a missing
    directory becomes a new empty store, so callers that want an existing one check first.
    """
    fingerprint = encoder_fingerprint(encoder)
    database_url = settings.database_url if database_url is None else database_url
    store = ProductStore(
        store_dir,
        fingerprint,
        encoder.embed_dim,
        float16=settings.index_float16,
        gpu_shard=settings.index_gpu_shard,
        duplicate_threshold=settings.duplicate_threshold,
        duplicate_policy=settings.duplicate_policy,
        database_url=database_url or None,
        # other processes write too: replicas over PostgreSQL, or workers sharing this SQLite store
        sync_interval_s=settings.sync_interval_s if database_url or settings.workers > 1 else None,
    )
    try:
        embedder = Embedder(
            encoder,
            store,
            settings.max_batch_size,
            settings.max_wait_ms,
            settings.max_image_pixels,
            on_batch=metrics.batch_size.observe,
            max_queue=settings.max_queue,
            timeout_s=settings.request_timeout_s,
            decode_timeout_s=settings.decode_timeout_s,
            gpu_decode=None if settings.gpu_decode else False,  # None: on CUDA
        )
        thresholds = load_thresholds(store)
        rerank = rerank_options(settings, store.rerank_options)
        with_features, images, has_index = store.features.count(), store.image_count(), store.local.ready
    except BaseException:
        store.close()
        raise
    if thresholds is None:
        log.warning(
            "the store %s has no match calibration: results carry no match label (lookalike index calibrate)",
            store_dir,
        )
    if rerank.enabled and not has_index:
        log.warning(
            "local matching is on, but the store %s has no local index: searches use the global ranking "
            "alone (lookalike index features --store %s trains one)",
            store_dir,
            store_dir,
        )
    elif rerank.enabled and with_features < images:
        log.warning(
            "local matching is on, but only %d of the store's %d images have local features: the others "
            "are found by the global ranking alone (lookalike index features --store %s)",
            with_features,
            images,
            store_dir,
        )
    log.info(
        "loaded encoder %s (%s) on %s; store %s holds %d products; index %s",
        fingerprint[:12],
        encoder.config.arch,
        embedder.device,
        store_dir,
        store.count(),
        store.index_info()["description"],
    )
    identity = directory_identity(store_dir)
    return Runtime(encoder_path, store_dir, embedder, store, thresholds, identity, database_url, rerank)
