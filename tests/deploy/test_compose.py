"""docker-compose.yml, its CPU override and .env.example, checked without Docker: they parse, name
only real settings, document all of them, and agree with the image on ports, volumes and paths."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from app.config import Settings
from tests.deploy.files import (
    ROOT,
    dockerfile_stages,
    env_file,
    interpolate,
    load_compose,
    merge_compose,
    settings_from,
)

COMPOSE = load_compose("docker-compose.yml")
CPU = merge_compose(COMPOSE, load_compose("docker-compose.cpu.yml"))
SERVICES = ("api", "train", "build")
ACTIVE, COMMENTED = env_file()
SETTINGS = {f"LOOKALIKE_{name.upper()}" for name in Settings.model_fields}
IMAGE_ENV = dockerfile_stages()["cuda"].env()
DEFAULT_PORT = Settings.model_fields["port"].default


def _service(name: str, compose: dict[str, Any] = COMPOSE) -> dict[str, Any]:
    assert name in compose["services"], f"no service {name}: {sorted(compose['services'])}"
    return compose["services"][name]


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> volume name or host path."""
    mounts = {}
    for entry in service.get("volumes", []):
        source, target, *_ = interpolate(entry).split(":")
        mounts[target] = source
    return mounts


def _under_a_mount(path: str, service: dict[str, Any]) -> str | None:
    """The named volume that holds ``path`` in ``service``, if any."""
    return next((src for target, src in _mounts(service).items() if Path(path).is_relative_to(target)), None)


def _option(service: dict[str, Any], flag: str) -> str:
    command = [interpolate(str(word)) for word in service["command"]]
    return command[command.index(flag) + 1]


def test_the_compose_files_parse_into_the_services_and_profiles() -> None:
    assert set(COMPOSE["services"]) == set(SERVICES)
    assert "profiles" not in _service("api")  # `docker compose up` starts the API
    assert _service("train")["profiles"] == ["train"] and _service("build")["profiles"] == ["build"]
    assert _service("train")["command"][:2] == ["lookalike", "train"]
    assert _service("build")["command"][:2] == ["lookalike", "build"]
    assert set(COMPOSE["volumes"]) == {"artifacts", "store"}


@pytest.mark.parametrize("name", SERVICES)
def test_every_service_reserves_a_gpu_and_reads_the_env_file(name: str) -> None:
    service = _service(name)
    devices = service["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    assert service["build"] == {"context": ".", "target": "cuda"} and service["image"] == "lookalike:cuda"
    assert service["env_file"] == [{"path": ".env", "required": False}]


@pytest.mark.parametrize("name", SERVICES)
def test_the_cpu_override_drops_the_gpu_and_builds_the_cpu_target(name: str) -> None:
    service = _service(name, CPU)
    assert "deploy" not in service
    assert service["build"] == {"context": ".", "target": "cpu"} and service["image"] == "lookalike:cpu"
    assert service.get("profiles") == _service(name).get("profiles")  # the rest stays as it was
    assert service.get("volumes") == _service(name).get("volumes")
    targets = {s.name for s in dockerfile_stages().values()}
    assert "cpu" in targets and "cuda" in targets
    assert "docker-compose.cpu.yml" in COMMENTED.get("COMPOSE_FILE", "")


def test_the_api_publishes_the_port_the_image_listens_on_and_checks_health_there() -> None:
    api = _service("api")
    (mapping,) = api["ports"]
    host, container = interpolate(mapping).split(":")
    assert int(container) == int(IMAGE_ENV["LOOKALIKE_PORT"]) == DEFAULT_PORT
    assert host == ACTIVE["HTTP_PORT"] == str(DEFAULT_PORT)
    test = api["healthcheck"]["test"]
    assert test[0] == "CMD" and f"127.0.0.1:{container}/health" in test[-1]
    assert {"interval", "timeout", "start_period", "retries"} <= set(api["healthcheck"])


def test_the_served_encoder_and_store_live_in_the_volumes() -> None:
    api = _service("api")
    for variable in ("LOOKALIKE_ENCODER_PATH", "LOOKALIKE_STORE_DIR"):
        assert ACTIVE[variable] == IMAGE_ENV[variable], f"{variable}: .env.example and the image differ"
    settings = settings_from(ACTIVE)
    assert _under_a_mount(str(settings.encoder_path), api) == "artifacts"
    assert _under_a_mount(str(settings.store_dir), api) == "store"


def test_train_writes_the_encoder_that_build_embeds_with_into_a_new_store() -> None:
    train, build, api = _service("train"), _service("build"), _service("api")
    encoder = _option(train, "--out")
    assert encoder == _option(build, "--encoder") == ACTIVE["NEXT_ENCODER"]
    assert _under_a_mount(encoder, train) == "artifacts" == _under_a_mount(encoder, build)
    store = _option(build, "--store")
    assert store == ACTIVE["NEXT_STORE"] and _under_a_mount(store, build) == "store"
    assert Path(store) != Path(ACTIVE["LOOKALIKE_STORE_DIR"])  # never the store being served
    assert _under_a_mount(_option(train, "--output-dir"), train) == "artifacts"
    for service in (train, build):
        catalog = _option(service, "--data" if service is train else "--catalog")
        assert _mounts(service)[catalog] == "./catalog" == ACTIVE["CATALOG_DIR"]
        assert service["volumes"][-1].endswith(":ro")
    assert "shm_size" in train
    assert _mounts(api) == {"/artifacts": "artifacts", "/data": "store"}


def _lookalike_variables(value: Any) -> set[str]:
    text = value if isinstance(value, str) else repr(value)
    return set(re.findall(r"\bLOOKALIKE_[A-Z0-9_]+", text))


def test_every_lookalike_variable_set_anywhere_is_a_setting() -> None:
    named = _lookalike_variables(COMPOSE) | set(ACTIVE) | set(COMMENTED)
    named |= {k for k in IMAGE_ENV if k.startswith("LOOKALIKE_")}
    named = {n for n in named if n.startswith("LOOKALIKE_")}
    assert named and not named - SETTINGS, f"not settings: {sorted(named - SETTINGS)}"


def test_the_env_example_documents_every_setting_with_a_valid_value() -> None:
    shown = {k: v for k, v in {**COMMENTED, **ACTIVE}.items() if k.startswith("LOOKALIKE_")}
    assert not SETTINGS - set(shown), f"undocumented settings: {sorted(SETTINGS - set(shown))}"
    settings = settings_from(shown)  # every value shown parses (and passes the settings' checks)
    for name, field in Settings.model_fields.items():
        variable = f"LOOKALIKE_{name.upper()}"
        if variable in COMMENTED and variable not in IMAGE_ENV:  # commented out: the default
            assert getattr(settings, name) == field.default, f"{variable}: shown {shown[variable]!r}"
    text = (ROOT / ".env.example").read_text()
    for variable in shown:  # and each has a line of explanation above it
        explained = rf"^# [^\n]*[a-z][^\n]*\n(# ?[A-Z_]+=[^\n]*\n)*#? ?{variable}="
        assert re.search(explained, text, re.M), f"{variable} has no explanation above it"
