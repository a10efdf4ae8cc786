"""insecure_dev_mode (writes without a key) never serves a public socket, however the server was
started: real uvicorn processes bound by uvicorn's own flags or handed a socket."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.app.conftest import make_client
from tests.conftest import image_bytes
from tests.server import free_port

HANG_S = 240  # only to detect a server that never stops: the encoder load is most of it


def _uvicorn(encoder: Path, store: Path, *flags: str, **popen: object) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "LOOKALIKE_INSECURE_DEV_MODE": "true",
        "LOOKALIKE_API_KEYS": "",
        "LOOKALIKE_ENCODER_PATH": str(encoder),
        "LOOKALIKE_STORE_DIR": str(store),
    }
    command = [sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory", *flags]
    return subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True, **popen)  # type: ignore[call-overload]


def _add(base: str, sku: str) -> httpx.Response:
    return httpx.post(
        f"{base}/index",
        files={"image": ("n.png", image_bytes(4242, "PNG"), "image/png")},
        data={"sku": sku, "title": "Dev product"},
        timeout=60,
    )


def _stopped(server: subprocess.Popen[str]) -> tuple[int, str]:
    try:
        _, err = server.communicate(timeout=HANG_S)
    except subprocess.TimeoutExpired:
        server.kill()
        _, err = server.communicate()
        pytest.fail(f"the server kept running in insecure_dev_mode on a public socket:\n{err[-2000:]}")
    return server.returncode, err


def test_a_server_bound_public_by_uvicorns_own_flags_shuts_down(
    tiny_encoder_path: Path, store_dir: Path
) -> None:
    server = _uvicorn(tiny_encoder_path, store_dir, "--host", "0.0.0.0", "--port", str(free_port()))
    code, err = _stopped(server)
    assert code != 0 and "insecure_dev_mode" in err and "0.0.0.0" in err, err[-2000:]


def test_a_server_handed_a_public_socket_does_not_start(tiny_encoder_path: Path, store_dir: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("0.0.0.0", 0))
        sock.listen()
        fd = sock.fileno()
        server = _uvicorn(tiny_encoder_path, store_dir, "--fd", str(fd), pass_fds=(fd,))
        code, err = _stopped(server)
    assert code != 0 and "insecure_dev_mode" in err and "0.0.0.0" in err, err[-2000:]
    assert "Application startup failed" in err  # refused before anything was served


def test_a_server_on_loopback_takes_writes_without_a_key(tiny_encoder_path: Path, store_dir: Path) -> None:
    port = free_port()
    server = _uvicorn(tiny_encoder_path, store_dir, "--host", "127.0.0.1", "--port", str(port))
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + HANG_S
        while server.poll() is None and time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.3)
        assert _add(base, "DEV-1").status_code == 201
        time.sleep(0.5)  # several rounds of the socket check: it found nothing to refuse
        assert server.poll() is None and _add(base, "DEV-2").status_code == 201
    finally:
        server.terminate()
        server.communicate(timeout=60)


def test_a_write_without_a_key_comes_only_over_a_loopback_connection(
    tiny_encoder_path: Path, store_dir: Path
) -> None:
    with make_client(tiny_encoder_path, store_dir, api_keys="", insecure_dev_mode=True) as client:
        for sku, (host, status) in enumerate((("http://192.0.2.10", 403), ("http://127.0.0.1", 201))):
            client.base_url = host  # the address the connection was made to
            r = client.post(
                "/index",
                files={"image": ("n.png", image_bytes(4242 + sku, "PNG"), "image/png")},
                data={"sku": f"DEV-{sku}", "title": "Dev product"},
            )
            assert r.status_code == status, (host, r.text)
