"""No module of the packages grows past 400 lines: past that a file holds more than one concept
and a newcomer can no longer find one thing in it (README, "Layout")."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("encoder", "training", "index", "ops", "app", "lookalike")
MAX_LINES = 400


@pytest.mark.parametrize("package", PACKAGES)
def test_no_module_is_over_400_lines(package: str) -> None:
    modules = sorted((ROOT / package).rglob("*.py"))
    assert modules, f"no modules found in {package}/"
    sizes = {str(m.relative_to(ROOT)): len(m.read_text().splitlines()) for m in modules}
    long = {name: n for name, n in sizes.items() if n > MAX_LINES}
    assert not long, f"over {MAX_LINES} lines, split by concept: {long}"
