"""Several server processes on one port: ``lookalike serve --workers N`` (``LOOKALIKE_WORKERS``).

One Python process tops out at what one core does for the request around a search (HTTP,
multipart, JSON), whatever the encoder's device. uvicorn's workers share one listening socket;
each process builds the app itself (``app.main:create_app``, a factory, so the settings reach it
through the environment) and loads its own encoder, micro-batcher and FAISS copy. Writes stay
consistent as between replicas: the store's writer lock is taken across the processes sharing
its directory (``index.write_lock``), and every worker follows the change log to apply the
others' writes to its FAISS copy every ``LOOKALIKE_SYNC_INTERVAL_S`` (``index.sync``).

Each worker labels its metrics and answers with its own id (the process id), so that a scrape of
``/metrics``, which one worker answers, never looks like a counter reset to Prometheus.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from app.config import Settings
from app.memory import ARENAS

WORKER_HEADER = "X-Lookalike-Worker"
APP_FACTORY = "app.main:create_app"
# The settings `lookalike serve` takes as options: exported so that each worker reads them too.
CLI_SETTINGS = ("encoder_path", "store_dir", "database_url", "host", "port", "workers")


def worker_id() -> str:
    """This worker's name in metrics and answers: its process id."""
    return str(os.getpid())


def threads_per_worker(workers: int, cpus: int | None = None) -> int:
    """The CPU's threads shared out, so N workers' torch pools do not fight over the same cores."""
    return max(1, (cpus or os.cpu_count() or 1) // workers)


def worker_environment(settings: Settings, environ: dict[str, str]) -> dict[str, str]:
    """The variables the workers need beside ``environ``: the options given on the command line
    as ``LOOKALIKE_*``, and the allocator and thread limits (unless already set)."""
    env = {f"LOOKALIKE_{name.upper()}": str(getattr(settings, name)) for name in CLI_SETTINGS}
    if "MALLOC_ARENA_MAX" not in environ:  # a worker starts fresh: glibc reads this at its start
        env["MALLOC_ARENA_MAX"] = str(ARENAS)
    if "OMP_NUM_THREADS" not in environ:  # torch's intra-op pool (one per worker)
        env["OMP_NUM_THREADS"] = str(threads_per_worker(settings.workers))
    return env


def serve_workers(settings: Settings, log_level: str, log_config: dict[str, Any]) -> None:
    """Run ``settings.workers`` server processes on ``settings.host:port`` until stopped."""
    import uvicorn

    os.environ.update(worker_environment(settings, dict(os.environ)))
    uvicorn.run(
        APP_FACTORY,
        factory=True,
        workers=settings.workers,
        host=settings.host,
        port=settings.port,
        log_level=log_level,
        log_config=log_config,
        limit_concurrency=settings.limit_concurrency,  # per worker
    )


class WorkerLabelled:
    """A collector giving every sample of ``registry`` a ``worker`` label: each worker's counters
    are series of their own, which ``sum(rate(...))`` adds up across the workers."""

    def __init__(self, registry: Collector, worker: str) -> None:
        self.registry, self.worker = registry, worker

    def collect(self) -> Iterator[Metric]:
        for family in self.registry.collect():
            labelled = Metric(family.name, family.documentation, family.type, family.unit)
            for s in family.samples:
                labels = {**s.labels, "worker": self.worker}
                labelled.add_sample(s.name, labels, s.value, s.timestamp, s.exemplar, s.native_histogram)
            yield labelled
