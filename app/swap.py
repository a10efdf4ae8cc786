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


# The same answer for a path that is missing and one outside the roots: which paths exist
# outside them is none of a client's business.
ENCODER_NOT_FOUND = (
    "encoder_not_found",
    "no encoder this server may load at encoder_path: it must be an encoder file under "
    "LOOKALIKE_RELOAD_ROOTS",
)
STORE_NOT_FOUND = (
    "store_not_found",
    "no product store this server may serve at store_dir: it must be a store directory built with "
    "`lookalike build`, under LOOKALIKE_RELOAD_ROOTS",
)

RELOAD_NEEDS_ONE_WORKER = (
    "reload_needs_one_worker",
    "this server runs several workers and a reload would switch only the one that took it; "
    "restart the server with the new LOOKALIKE_ENCODER_PATH and LOOKALIKE_STORE_DIR instead",
)


def _missing_folders(path: Path) -> list[Path]:
    """``path`` and its ancestors that do not exist yet, deepest first."""
    missing = []
    while not path.exists() and path != path.parent:
        missing.append(path)
        path = path.parent
    return missing


def _remove_empty(folders: list[Path]) -> None:
    """Undo the folders a refused reload created (deepest first; only while empty)."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return


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

    async def reload(self, encoder_path: Path | None = None, store_dir: Path | None = None) -> SwapReport:
        """Serve ``encoder_path`` + ``store_dir`` (default: the configured ones) from now on, with
        the configured database (``LOOKALIKE_DATABASE_URL``, or SQLite in ``store_dir``).

        A path given here must resolve (symlinks and ``..`` followed) under
        ``LOOKALIKE_RELOAD_ROOTS``; one that does not is refused exactly like a missing one, before
        anything is opened or created. Raises ``ReloadRefused`` (nothing switched) for a missing
        or unreadable encoder or store, an encoder the store was not built with, or another
        reload in progress.
        """
        if self.settings.workers > 1:  # the other workers would go on serving the old pair
            self.metrics.reloads.labels("refused").inc()
            raise ReloadRefused(*RELOAD_NEEDS_ONE_WORKER)
        if self._lock.locked():
            self.metrics.reloads.labels("refused").inc()
            raise ReloadRefused("reload_in_progress", "another reload is in progress; try again when it ends")
        async with self._lock:
            started = time.perf_counter()
            try:
                encoder_path = self._allowed(encoder_path, "encoder_path", ENCODER_NOT_FOUND)
                store_dir = self._allowed(store_dir, "store_dir", STORE_NOT_FOUND)
            except ReloadRefused:
                self.metrics.reloads.labels("refused").inc()
                raise
            encoder_path = encoder_path or Path(self.settings.encoder_path)
            store_dir = store_dir or Path(self.settings.store_dir)
            database_url = self.settings.database_url
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

    def _allowed(self, given: Path | None, field: str, refusal: tuple[str, str]) -> Path | None:
        """``given`` resolved, when it lies under a reload root; None when not given."""
        if given is None:
            return None
        try:
            resolved = Path(given).resolve()
            roots = [root.resolve() for root in self.settings.reload_roots_list]
        except (OSError, ValueError, RuntimeError) as exc:  # a NUL byte, a symlink loop, ...
            log.warning("reload refused: %s %r cannot be resolved: %s", field, str(given), exc)
            raise ReloadRefused(*refusal) from None
        if not any(resolved.is_relative_to(root) for root in roots):
            log.warning(
                "reload refused: %s %r resolves to %s, outside LOOKALIKE_RELOAD_ROOTS (%s)",
                field,
                str(given),
                resolved,
                ", ".join(map(str, roots)),
            )
            raise ReloadRefused(*refusal)
        return resolved

    def _prepare(
        self, encoder_path: Path, store_dir: Path, database_url: str, current: Runtime
    ) -> Runtime | None:
        """The new runtime, loaded and checked but not started; None when it is the current one.
        The messages name no path and quote no library: the detail goes to the log."""
        if not encoder_path.is_file():
            log.warning("reload refused: no encoder file at %s", encoder_path)
            raise ReloadRefused(*ENCODER_NOT_FOUND)
        if not database_url and not (store_dir / ProductStore.DB_NAME).is_file():
            log.warning("reload refused: no product store in %s", store_dir)
            raise ReloadRefused(*STORE_NOT_FOUND)
        try:
            encoder = load_encoder(encoder_path, map_location=pick_device(self.settings.device))
        except Exception as exc:  # not a checkpoint, damaged, weights that do not fit the config, ...
            log.warning("reload refused: %s is not a loadable encoder: %s", encoder_path, exc)
            raise ReloadRefused(
                "invalid_encoder", "the file at encoder_path is not an encoder this server can load"
            ) from None
        if store_dir.is_dir() and directory_identity(store_dir) == current.store_identity:
            if encoder_fingerprint(encoder) == current.fingerprint:
                return None
            raise ReloadRefused(
                "encoder_mismatch",
                f"store_dir is the store being served, built with encoder {current.fingerprint[:12]}; "
                "embed the catalog with the new encoder into a new store "
                "(`lookalike build --catalog ... --encoder NEW.pt --store NEW_DIR`) and reload that",
            )
        created = _missing_folders(store_dir)  # a PostgreSQL store's cache folder may be new
        try:
            return open_runtime(self.settings, encoder, encoder_path, store_dir, self.metrics, database_url)
        except EncoderMismatchError as exc:
            _remove_empty(created)
            log.warning("reload refused: %s", exc)
            raise ReloadRefused(
                "encoder_mismatch",
                "the store at store_dir was built with another encoder; embed the catalog with this one "
                "into a new store (`lookalike build --catalog ... --encoder NEW.pt --store NEW_DIR`)",
            ) from None
        except Exception as exc:  # unreadable SQLite, unreachable PostgreSQL, damaged files, ...
            _remove_empty(created)
            log.warning("reload refused: %s cannot be opened as a product store: %s", store_dir, exc)
            raise ReloadRefused(
                "invalid_store", "the store at store_dir cannot be opened (the server's log says why)"
            ) from None

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
