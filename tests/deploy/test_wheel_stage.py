"""The Dockerfile's wheel stage, re-enacted without Docker: the build context that .dockerignore
lets through, the stage's COPY lines, `pip wheel`, and what the wheel then holds."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.deploy.files import ROOT, dockerfile_stages, dockerignored


def _context(into: Path) -> None:
    """Copy the files Docker would send as the build context."""
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    reincluded = {line[1:].split("/")[0] for line in map(str.strip, lines) if line.startswith("!")}
    for top in ROOT.iterdir():
        if dockerignored(top.name) and top.name not in reincluded:  # (.git, .venv: not walked)
            continue
        paths = [top] if top.is_file() else [p for p in top.rglob("*") if p.is_file()]
        for path in paths:
            rel = path.relative_to(ROOT).as_posix()
            if not dockerignored(rel):
                (into / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, into / rel)


@pytest.mark.slow
def test_the_wheel_stage_packs_everything_the_server_reads(tmp_path: Path) -> None:
    context, src = tmp_path / "context", tmp_path / "src"
    context.mkdir()
    _context(context)
    assert not (context / "tests").exists() and not (context / ".git").exists()
    for flags, sources, dest in dockerfile_stages()["wheel"].copies():
        assert not flags
        target = src / dest.removeprefix("./")
        for source in sources:
            if (context / source).is_dir():
                shutil.copytree(context / source, target)
            else:
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy2(context / source, target / Path(source).name)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path / "w"),
            ".",
        ],
        cwd=src,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    (wheel,) = (tmp_path / "w").glob("lookalike-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for package in ("encoder", "training", "index", "ops", "app", "lookalike"):
        for path in (ROOT / package).rglob("*"):
            rel = path.relative_to(ROOT).as_posix()
            if path.is_file() and "__pycache__" not in rel:
                assert rel in names, f"{rel} is missing from the image's wheel"
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "lookalike = lookalike.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
