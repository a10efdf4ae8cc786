"""Prometheus metrics (GET /metrics): requests by route and status, latency, batching, catalog size.

Every app has its own registry, so several apps in one process (tests) never share counters.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 128, 256)
# HTTP methods counted under their own name; any other a client invents is counted as "other", so
# it cannot grow the label set (each label value is a time series kept for the life of the process)
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "lookalike_requests",
            "HTTP requests answered",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "lookalike_request_seconds",
            "time from request to the end of the answer",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "lookalike_batch_size",
            "images per encoder forward",
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "lookalike_queue_depth", "images waiting for the encoder", registry=self.registry
        )
        self.products = Gauge("lookalike_catalog_products", "products in the store", registry=self.registry)
        self.vectors = Gauge("lookalike_catalog_vectors", "searchable vectors", registry=self.registry)
        self.encoder = Info("lookalike_encoder", "the encoder being served", registry=self.registry)
        self.reloads = Counter(
            "lookalike_reloads",
            "POST /admin/reload by outcome: swapped, unchanged, refused (nothing switched) or failed",
            ["outcome"],
            registry=self.registry,
        )

    def watch(
        self, queue_depth: Callable[[], int], products: Callable[[], int], vectors: Callable[[], int]
    ) -> None:
        """Gauges read at scrape time from the live objects."""
        self.queue_depth.set_function(queue_depth)
        self.products.set_function(products)
        self.vectors.set_function(vectors)


class RequestMetrics:
    """ASGI middleware counting and timing every HTTP request under its route template
    (``/products/{product_id}``, never the raw path) and method (unknown ones as ``other``): bounded
    label values."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            method = scope["method"] if scope["method"] in KNOWN_METHODS else "other"
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.latency.labels(method, route).observe(time.perf_counter() - started)
