"""The dependency floors in pyproject.toml stay past the releases with known vulnerabilities."""

from __future__ import annotations

import sys
from importlib.metadata import version

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from tests.deploy.files import ROOT

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

# package: (first fixed release, the last vulnerable one that must be refused)
FLOORS = {
    "torch": ("2.6", "2.5.1"),  # CVE-2025-32434: torch.load(weights_only=True) could still run code
    "pillow": ("10.3", "10.2.0"),  # CVE-2024-28219: buffer overflow in _imagingcms
    "python-multipart": ("0.0.18", "0.0.17"),  # CVE-2024-53981: CPU-bound DoS on crafted boundaries
    "starlette": ("0.49.1", "0.49.0"),  # CVE-2025-62727: Range header ReDoS in FileResponse
}


def _requirements() -> dict[str, Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {(r := Requirement(line)).name.lower(): r for line in project["dependencies"]}


@pytest.mark.parametrize("package", sorted(FLOORS))
def test_dependency_floors_refuse_vulnerable_releases(package: str) -> None:
    fixed, vulnerable = FLOORS[package]
    requirement = _requirements().get(package)
    assert requirement is not None, f"{package} is not a declared dependency; its floor cannot hold"
    assert not requirement.specifier.contains(vulnerable, prereleases=True), requirement
    assert requirement.specifier.contains(fixed), requirement


@pytest.mark.parametrize("package", sorted(FLOORS))
def test_the_installed_release_meets_the_floor(package: str) -> None:
    assert Version(version(package)) >= Version(FLOORS[package][0])
