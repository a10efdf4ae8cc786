"""A real `lookalike serve` process on a free loopback port, for tests that need real HTTP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_server(encoder: Path, store: Path, **env: str) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """(base URL, process) of a server that answers /ready; SIGTERM and wait when done."""
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lookalike",
            "serve",
            "--encoder",
            str(encoder),
            "--store",
            str(store),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env={**os.environ, **env},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{base}/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the server did not come up")
            time.sleep(0.3)
        yield base, server
    finally:
        server.terminate()
        server.wait(timeout=30)
