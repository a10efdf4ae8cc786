"""A real PostgreSQL server for the tests: initdb + postgres in a temp dir, on a free loopback port.

PostgreSQL refuses to run as root, so as root the server runs as the ``postgres`` system user
(its data dir owned by that user); as anyone else it runs as that user.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

from tests.server import free_port

MISSING = (
    "PostgreSQL's server binaries (initdb, postgres) were not found in /usr/lib/postgresql/*/bin; "
    "run `make system-deps` to install them"
)


def server_bindir() -> Path:
    """The newest /usr/lib/postgresql/<version>/bin holding initdb and postgres."""
    found = [
        Path(d)
        for d in glob.glob("/usr/lib/postgresql/*/bin")
        if (Path(d) / "initdb").is_file() and (Path(d) / "postgres").is_file()
    ]
    if not found:
        raise RuntimeError(MISSING)
    return max(found, key=lambda d: [int(p) for p in d.parent.name.split(".") if p.isdigit()])


def _as_server_user() -> dict[str, Any]:
    """subprocess arguments that drop root to the ``postgres`` user (nothing when not root)."""
    if os.geteuid() != 0:
        return {}
    try:
        user = pwd.getpwnam("postgres")
    except KeyError:
        raise RuntimeError(f"running as root and there is no `postgres` user: {MISSING}") from None
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


@contextmanager
def running_postgres() -> Iterator[str]:
    """The URL of a fresh PostgreSQL server (superuser ``postgres``, trust auth, loopback only);
    stopped and deleted afterwards. fsync is off: test data need not survive a power loss."""
    bindir = server_bindir()
    drop = _as_server_user()
    root = Path(tempfile.mkdtemp(prefix="lookalike-pg-"))
    if drop:
        os.chown(root, drop["user"], drop["group"])
    data, port = root / "data", free_port()
    server: subprocess.Popen[bytes] | None = None
    try:
        subprocess.run(
            [
                bindir / "initdb",
                "-D",
                data,
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
            cwd=root,
            **drop,
        )
        server = subprocess.Popen(
            [
                bindir / "postgres",
                "-D",
                data,
                "-p",
                str(port),
                "-k",
                root,
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ],
            stdout=subprocess.DEVNULL,
            stderr=open(root / "server.log", "wb"),  # noqa: SIM115 - the server keeps it open
            cwd=root,
            **drop,
        )
        url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        deadline = time.monotonic() + 60
        while True:
            try:
                psycopg.connect(url, connect_timeout=2).close()
                break
            except psycopg.OperationalError:
                if server.poll() is not None or time.monotonic() > deadline:
                    log = (root / "server.log").read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"PostgreSQL did not start:\n{log}") from None
                time.sleep(0.2)
        yield url
    finally:
        if server is not None and server.poll() is None:
            server.send_signal(signal.SIGINT)  # fast shutdown: clients are disconnected
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        shutil.rmtree(root, ignore_errors=True)


def new_database(server_url: str) -> str:
    """Create an empty database on the server; return its URL."""
    name = f"lookalike_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return server_url.rsplit("/", 1)[0] + f"/{name}"
