"""The serving store imports without torch: ``index`` needs only the torch-free half of ``encoder``
(image decoding, local features), whose model names load torch on first use."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import sys
import index
assert "torch" not in sys.modules, "import index loaded torch"
from encoder import Encoder  # the lazy names still resolve, and only now need torch
assert Encoder.__module__ == "encoder.model" and "torch" in sys.modules
"""


def test_importing_the_store_does_not_load_torch() -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=ROOT,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
