"""Hot swap: switch the serving encoder and store to new ones without dropping a request.

A reload loads the new encoder, opens the store built with it and starts its batcher off to
the side (the encoder and SQLite/FAISS off the event loop), then replaces ``state.runtime`` in
one assignment. Requests that started before keep the runtime they leased (``app/runtime.py``);
once the last of them has finished, the old batcher stops and the old store writes its final
snapshot and closes. Anything wrong with the new pair is found before the switch, so a refused
or failed reload leaves the old pair serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import State

from app.config import Settings
from app.metrics import Metrics
from app.runtime import Runtime, directory_identity, open_runtime
from encoder import encoder_fingerprint, load_encoder, pick_device
from index import EncoderMismatchError, ProductStore

log = logging.getLogger("lookalike")
DRAIN_TIMEOUT_S = 30.0  # how long a reload answer waits for the old runtime's requests to finish


class ReloadRefused(Exception):
    """The new encoder or store cannot be served; ``code`` says why. Nothing was switched."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Served:
    """One encoder + store pair as the reload answer describes it."""

    encoder_path: str
    store_dir: str
    fingerprint: str
    arch: str
    products: int

    @classmethod
    def of(cls, runtime: Runtime) -> Served:
        """Blocking (counts the store's products)."""
        return cls(
            str(runtime.encoder_path),
            str(runtime.store_dir),
            runtime.fingerprint,
            runtime.arch,
            runtime.store.count(),
        )


@dataclass(frozen=True)
class SwapReport:
    changed: bool  # False: the request named the pair already being served
    previous: Served
    current: Served
    drained: bool  # the old pair's requests finished and it was closed before the answer
    seconds: float


class Swapper:
    """Owns ``state.runtime``: the first load at start-up, reloads (one at a time), shutdown."""

    def __init__(
        self, state: State, settings: Settings, metrics: Metrics, drain_timeout_s: float = DRAIN_TIMEOUT_S
    ) -> None:
        self.state, self.settings, self.metrics = state, settings, metrics
        self.drain_timeout_s = drain_timeout_s
        self._lock = asyncio.Lock()
        self._retiring: dict[asyncio.Task[None], Runtime] = {}

    @property
    def current(self) -> Runtime:
        return self.state.runtime

    async def start(self) -> None:
        """Load the configured encoder and store (the store is created empty when missing)."""
        settings = self.settings

        def load() -> Runtime:
            encoder = load_encoder(settings.encoder_path, map_location=pick_device(settings.device))
            return open_runtime(settings, encoder, settings.encoder_path, settings.store_dir, self.metrics)

        runtime = await run_in_threadpool(load)
        runtime.start()
        self.state.runtime = runtime
        runtime.publish(self.metrics)

    async def reload(
        self, encoder_path: Path | None = None, store_dir: Path | None = None, database_url: str | None = None
    ) -> SwapReport:
        """Serve ``encoder_path`` + ``store_dir`` (default: the configured ones) from now on; with
        PostgreSQL, ``database_url`` names the catalog (default: the configured one, "": SQLite).

        Raises ``ReloadRefused`` (nothing switched) for a missing or unreadable encoder or store,
        an encoder the store was not built with, or another reload in progress.
        """
        if self._lock.locked():
            self.metrics.reloads.labels("refused").inc()
            raise ReloadRefused("reload_in_progress", "another reload is in progress; try again when it ends")
        async with self._lock:
            started = time.perf_counter()
            encoder_path = Path(encoder_path or self.settings.encoder_path)
            store_dir = Path(store_dir or self.settings.store_dir)
            database_url = self.settings.database_url if database_url is None else database_url
            old = self.current
            previous = await run_in_threadpool(Served.of, old)
            try:
                fresh = await run_in_threadpool(self._prepare, encoder_path, store_dir, database_url, old)
            except ReloadRefused:
                self.metrics.reloads.labels("refused").inc()
                raise
            except Exception:
                self.metrics.reloads.labels("failed").inc()
                raise
            if fresh is None:
                self.metrics.reloads.labels("unchanged").inc()
                return SwapReport(False, previous, previous, True, time.perf_counter() - started)
            fresh.start()
            self.state.runtime = fresh  # the switch: requests from here on lease the new pair
            fresh.publish(self.metrics)
            self.metrics.reloads.labels("swapped").inc()
            log.info(
                "switched from encoder %s (%s) to encoder %s (%s); %d request(s) finishing on the old pair",
                old.fingerprint[:12],
                old.store_dir,
                fresh.fingerprint[:12],
                store_dir,
                old.leases,
            )
            drained = await self._retire(old)
            current = await run_in_threadpool(Served.of, fresh)
            return SwapReport(True, previous, current, drained, time.perf_counter() - started)

    def _prepare(
        self, encoder_path: Path, store_dir: Path, database_url: str, current: Runtime
    ) -> Runtime | None:
        """The new runtime, loaded and checked but not started; None when it is the current one."""
        if not encoder_path.is_file():
            raise ReloadRefused("encoder_not_found", f"no encoder file at {encoder_path}")
        if not database_url and not (store_dir / ProductStore.DB_NAME).is_file():
            raise ReloadRefused(
                "store_not_found",
                f"{store_dir} holds no product store; build one with "
                f"`lookalike build --catalog ... --encoder {encoder_path} --store {store_dir}`",
            )
        try:
            encoder = load_encoder(encoder_path, map_location=pick_device(self.settings.device))
        except Exception as exc:  # not a checkpoint, damaged, weights that do not fit the config, ...
            raise ReloadRefused("invalid_encoder", f"{encoder_path}: {exc}") from exc
        if store_dir.is_dir() and directory_identity(store_dir) == current.store_identity:
            if database_url != current.database_url:  # its FAISS snapshot is the served store's
                raise ReloadRefused(
                    "store_dir_in_use",
                    f"{store_dir} is the directory of the store being served; give the other catalog its own",
                )
            if encoder_fingerprint(encoder) == current.fingerprint:
                return None
            raise ReloadRefused(
                "encoder_mismatch",
                f"{store_dir} is the store being served, built with encoder {current.fingerprint[:12]}; "
                f"embed the catalog with the new encoder into a new store "
                f"(`lookalike build --catalog ... --encoder {encoder_path} --store NEW_DIR`) and reload that",
            )
        try:
            return open_runtime(self.settings, encoder, encoder_path, store_dir, self.metrics, database_url)
        except EncoderMismatchError as exc:
            raise ReloadRefused("encoder_mismatch", str(exc)) from exc
        except Exception as exc:  # unreadable SQLite, unreachable PostgreSQL, damaged files, ...
            message = f"{store_dir} cannot be opened as a product store: {exc}"
            raise ReloadRefused("invalid_store", message) from exc

    async def _retire(self, old: Runtime) -> bool:
        """Close ``old`` once its requests finish; True when that happened within the drain timeout
        (otherwise it is closed in the background when they do)."""
        task = asyncio.get_running_loop().create_task(self._close_when_drained(old), name="retire-runtime")
        self._retiring[task] = old
        task.add_done_callback(lambda t: self._retiring.pop(t, None))
        done, _ = await asyncio.wait({task}, timeout=self.drain_timeout_s)
        return task in done

    @staticmethod
    async def _close_when_drained(old: Runtime) -> None:
        await old.drained()
        await Swapper._close(old)

    @staticmethod
    async def _close(runtime: Runtime) -> None:
        try:
            await runtime.close()
        except Exception:
            log.exception("closing the encoder %s and its store failed", runtime.fingerprint[:12])

    async def stop(self) -> None:
        """Shutdown: close the current runtime, and those still draining after a short grace."""
        pending = dict(self._retiring)
        if pending:
            _, late = await asyncio.wait(set(pending), timeout=5.0)
            for task in late:  # their requests outlived the server's own graceful shutdown
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                await self._close(pending[task])
        runtime = getattr(self.state, "runtime", None)
        if runtime is not None:
            await self._close(runtime)
