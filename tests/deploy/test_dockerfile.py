"""The Dockerfile, checked without Docker: hadolint, what it copies, its two targets and how they
run the service (user, volumes, port, health check) against the settings."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from app.config import Settings
from tests.deploy.files import ROOT, Stage, dockerfile_stages, dockerignored, settings_from

STAGES = dockerfile_stages()
TARGETS = ("cuda", "cpu")
DEFAULT_PORT = Settings.model_fields["port"].default


def _hadolint() -> str:
    found = Path(sys.executable).parent / "hadolint"
    path = str(found) if found.exists() else shutil.which("hadolint")
    assert path, "hadolint is missing: it comes with the dev extras (pip install -e '.[dev]')"
    return path


def test_hadolint_finds_nothing() -> None:
    result = subprocess.run(
        [_hadolint(), "--config", str(ROOT / ".hadolint.yaml"), "--no-color", str(ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert result.returncode == 0 and result.stdout.strip() == "", result.stdout + result.stderr


def test_hadolint_ignores_are_justified() -> None:
    text = (ROOT / ".hadolint.yaml").read_text()
    for rule in re.findall(r"^\s*-\s*(DL\d+|SC\d+)\s*$", text, re.M):
        reason = rf"#[^\n]*\b{rule}\b[^\n]*\n(\s*#[^\n]*\n)+\s*-\s*{rule}\b"  # a comment naming it, then more
        assert re.search(reason, text), f"{rule} is ignored without a reason in the comment above it"


def test_every_copied_source_exists_and_is_in_the_build_context() -> None:
    copied = 0
    for stage in STAGES.values():
        for flags, sources, _ in stage.copies():
            if "from" in flags:
                assert flags["from"] in STAGES, f"COPY --from={flags['from']}: no such stage"
                continue
            for source in sources:
                matches = list(ROOT.glob(source))
                assert matches, f"COPY {source}: not in the repository"
                assert not dockerignored(source), f"COPY {source}: .dockerignore leaves it out"
                copied += 1
    assert copied >= 8


def test_the_build_context_leaves_out_what_the_image_does_not_need() -> None:
    for path in (".git", ".venv", "tests/conftest.py", "bench/serve_load.py", "store", "runs", ".env"):
        assert dockerignored(path), path
    for path in ("app/main.py", "app/static/index.html", "index/db/schema.sql", "demo/encoder.pt"):
        assert not dockerignored(path), path
    assert dockerignored("app/__pycache__/main.cpython-311.pyc")


def _target(name: str) -> Stage:
    assert name in STAGES, f"no `{name}` target; stages: {sorted(STAGES)}"
    return STAGES[name]


def _base_chain(stage: Stage) -> list[str]:
    chain = [stage.base]
    while chain[-1] in STAGES:
        chain.append(STAGES[chain[-1]].base)
    return chain


def _extra_requirement(extra: str, name: str) -> Requirement:
    """``name``'s requirement in pyproject.toml's optional dependency group ``extra``."""
    group = re.search(rf"^{extra} = \[(.*)\]$", (ROOT / "pyproject.toml").read_text(), re.M)
    assert group, f"pyproject.toml has no {extra} extra"
    return next(
        Requirement(r) for r in re.findall(r'"([^"]+)"', group.group(1)) if Requirement(r).name == name
    )


def _pinned(arg: str) -> str:
    """The default of build argument ``arg`` (each stage that uses it declares it)."""
    values = {
        re.sub(rf"^{arg}=", "", a) for s in STAGES.values() for a in s.all("ARG") if a.startswith(f"{arg}=")
    }
    assert len(values) == 1, f"{arg}: {values or 'not declared'}"
    return values.pop()


def test_the_cuda_target_runs_on_an_nvidia_cuda_runtime_image_with_faiss_gpu() -> None:
    assert re.fullmatch(r"nvidia/cuda:[\d.]+-(cudnn-)?runtime-ubuntu[\d.]+", _base_chain(_target("cuda"))[-1])
    installs = " ".join(STAGES["cuda-venv"].all("RUN"))
    assert "pip uninstall -y faiss-cpu" in installs and "faiss-gpu==${FAISS_GPU_VERSION}" in installs
    assert installs.index("pip uninstall -y faiss-cpu") < installs.index("faiss-gpu==")
    pin = _pinned("FAISS_GPU_VERSION")
    assert _extra_requirement("gpu", "faiss-gpu").specifier.contains(pin), (
        f"faiss-gpu {pin} is not what .[gpu] asks"
    )


@pytest.mark.parametrize("stage", ["cpu-venv", "cuda-venv"])
def test_both_images_can_use_a_postgresql_catalog(stage: str) -> None:
    installs = " ".join(STAGES[stage].all("RUN"))
    assert '"psycopg[binary]==${PSYCOPG_VERSION}"' in installs
    pin = _pinned("PSYCOPG_VERSION")
    assert _extra_requirement("postgres", "psycopg").specifier.contains(pin), f"psycopg {pin} vs .[postgres]"


def test_torch_is_pinned_as_the_makefile_pins_it() -> None:
    makefile = (ROOT / "Makefile").read_text()
    pins = re.search(r"^TORCH_PINS := (.+)$", makefile, re.M)
    assert pins
    for stage_name in ("cpu-venv", "cuda-venv"):
        runs = " ".join(STAGES[stage_name].all("RUN"))
        for pin in pins.group(1).split():
            assert pin in runs, f"{stage_name} does not install {pin}"
    assert "download.pytorch.org/whl/cpu" in " ".join(STAGES["cpu-venv"].all("ARG"))


@pytest.mark.parametrize("name", TARGETS)
def test_each_target_serves_as_a_non_root_user(name: str) -> None:
    stage = _target(name)
    user = stage.all("USER")[-1]
    assert re.fullmatch(r"\d+(:\d+)?", user) and not user.startswith("0"), user
    assert stage.exec_form("CMD") == ["lookalike", "serve"]
    assert not stage.all("ENTRYPOINT")


@pytest.mark.parametrize("name", TARGETS)
def test_each_target_keeps_encoder_and_store_in_volumes_it_fills_with_the_demo(name: str) -> None:
    stage = _target(name)
    env = stage.env()
    volumes = [v for args in stage.all("VOLUME") for v in re.findall(r'"([^"]+)"', args)]
    encoder, store = Path(env["LOOKALIKE_ENCODER_PATH"]), Path(env["LOOKALIKE_STORE_DIR"])
    assert any(encoder.is_relative_to(v) for v in volumes), (encoder, volumes)
    assert any(store.is_relative_to(v) for v in volumes), (store, volumes)
    destinations = {dest: (flags, sources) for flags, sources, dest in stage.copies()}
    assert destinations[str(encoder)][1] == ["demo/encoder.pt"]
    assert destinations[str(store)][0].get("from") == "demo-store"
    built = " ".join(STAGES["demo-store"].all("RUN"))
    assert f"--store {store}" in built and "--encoder encoder.pt" in built
    settings = settings_from(env)
    assert settings.encoder_path == encoder and settings.store_dir == store


@pytest.mark.parametrize("name", TARGETS)
def test_each_target_listens_where_its_health_check_asks(name: str) -> None:
    stage = _target(name)
    env = stage.env()
    assert env["LOOKALIKE_HOST"] == "0.0.0.0"  # reachable through the published port
    assert int(env["LOOKALIKE_PORT"]) == DEFAULT_PORT
    assert stage.all("EXPOSE") == [env["LOOKALIKE_PORT"]]
    assert re.match(r"(--\w[\w-]*=\S+\s+)*CMD \[", stage.all("HEALTHCHECK")[-1])
    check = stage.exec_form("HEALTHCHECK")
    assert check[:2] == ["python", "-c"]
    assert "/health" in check[-1] and "LOOKALIKE_PORT" in check[-1] and f"'{DEFAULT_PORT}'" in check[-1]
