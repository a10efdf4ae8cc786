"""``insecure_dev_mode`` (writes without a key) stays on loopback: checked on the sockets themselves.

The setting's own check (``app/config.py``) only sees ``LOOKALIKE_HOST``. A server started another
way binds what it is told: ``uvicorn app.main:create_app --factory --host 0.0.0.0``, ``--fd`` or a
socket handed over by a process manager. So, in that mode:

- at startup, a listening socket already bound to a public address stops the start (uvicorn,
  gunicorn and systemd bind before the app starts when they hand sockets over);
- once the server is up, its listening sockets are checked again (uvicorn binds ``--host`` only
  after the app started) and a public one shuts the server down;
- meanwhile, a write without a key is taken only from a connection made to a loopback address.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import signal
import socket
from pathlib import Path

from starlette.types import Scope

from app.config import LOOPBACK, Settings

log = logging.getLogger(__name__)
POLL_S = 0.05  # how often the watcher looks for the server's sockets until it has found them
WATCH_S = 600.0  # how long it waits for a server to listen at all (the encoder may load slowly)
_FD_DIRS = (Path("/proc/self/fd"), Path("/dev/fd"))


def is_loopback(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host.split("%")[0])  # fe80::1%eth0: a zone id
    except ValueError:
        return host in LOOPBACK
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1
    return (mapped or address).is_loopback


def listening_addresses() -> list[str] | None:
    """The addresses of this process's listening TCP sockets; None where they cannot be listed."""
    fd_dir = next((d for d in _FD_DIRS if d.is_dir()), None)
    if fd_dir is None or not hasattr(socket, "SO_ACCEPTCONN"):
        return None
    found = []
    for name in os.listdir(fd_dir):
        try:
            sock = socket.socket(fileno=os.dup(int(name)))  # a copy: closing it leaves the original
        except (OSError, ValueError):
            continue  # not a socket, or closed meanwhile
        with sock:
            try:
                tcp = sock.family in (socket.AF_INET, socket.AF_INET6) and sock.type == socket.SOCK_STREAM
                if tcp and sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
                    found.append(str(sock.getsockname()[0]))
            except OSError:
                continue
    return found


def _public(addresses: list[str]) -> list[str]:
    return sorted({a for a in addresses if not is_loopback(a)})


def _message(public: list[str]) -> str:
    return (
        f"insecure_dev_mode accepts writes without a key, but the server listens on {', '.join(public)}, "
        f"not only on loopback ({', '.join(sorted(LOOPBACK))}); bind 127.0.0.1 or set LOOKALIKE_API_KEYS"
    )


def keyless_writes(settings: Settings) -> bool:
    return settings.insecure_dev_mode and not settings.keys


def local_connection(scope: Scope) -> bool:
    """Whether the request came in on a loopback address (or a Unix socket: no address)."""
    server = scope.get("server")
    return server is None or is_loopback(str(server[0]))


class DevModeGuard:
    """Made when the lifespan starts, ``watch`` once the app is up, ``stop`` when it ends."""

    def __init__(self, settings: Settings) -> None:
        """Raises ``RuntimeError`` (the server does not start) when already listening on a public
        address."""
        self.active = keyless_writes(settings)
        self._task: asyncio.Task[None] | None = None
        public = _public(listening_addresses() or []) if self.active else []
        if public:
            raise RuntimeError(_message(public))

    def watch(self) -> None:
        if self.active:
            self._task = asyncio.get_running_loop().create_task(_watch())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()


async def _watch() -> None:
    """Wait for the server's listening sockets; stop the server (SIGTERM) when one is public."""
    for _ in range(int(WATCH_S / POLL_S)):
        await asyncio.sleep(POLL_S)
        addresses = listening_addresses()
        if addresses is None:
            return  # cannot list them here: local_connection still refuses remote writes
        if addresses:
            if public := _public(addresses):
                log.error("%s: shutting down", _message(public))
                signal.raise_signal(signal.SIGTERM)
            return
