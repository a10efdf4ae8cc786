"""CPU time and peak RSS growth of preprocessing one hostile upload, each in a fresh process.

    .venv/bin/python bench/hostile_upload_memory.py            # wide, tall and crop

``wide`` / ``tall``: a 1-bit PNG of 20000x1 / 1x20000 (under 120 bytes); ``crop``: a 4000x4000
JPEG with the crop box 0,0,0.0001,1. Each case runs in its own process, so its peak RSS
(``ru_maxrss``) is its own. The figures before and after the shape checks: docs/BENCHMARKS.md.
"""

from __future__ import annotations

import io
import resource
import subprocess
import sys
import time

from PIL import Image

CASES = ("wide", "tall", "crop")


def _png_1bit(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.new("1", (width, height)).save(buf, "PNG")
    return buf.getvalue()


def _big_jpeg() -> bytes:
    buf = io.BytesIO()
    Image.radial_gradient("L").resize((4000, 4000)).convert("RGB").save(buf, "JPEG", quality=60)
    return buf.getvalue()


def measure(case: str) -> str:
    """One line: the case, its size, accepted or the error, CPU seconds and peak RSS growth."""
    from encoder import Crop, Preprocessor
    from encoder.model import EncoderConfig

    data, crop = {
        "wide": (_png_1bit(20000, 1), None),
        "tall": (_png_1bit(1, 20000), None),
        "crop": (_big_jpeg(), Crop(0, 0, 0.0001, 1)),
    }[case]
    preprocess = Preprocessor(EncoderConfig(arch="efficientnet_lite0", image_size=224))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.process_time()
    try:
        preprocess(data, crop)
        outcome = "accepted"
    except Exception as exc:  # what the service turns into a 4xx
        outcome = f"{type(exc).__name__}: {exc}"
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    return (
        f"{case}: {len(data)} bytes, {outcome[:100]}; "
        f"cpu {time.process_time() - started:.2f} s; peak RSS growth {grown:.0f} MiB"
    )


def main() -> None:
    if len(sys.argv) > 1:
        print(measure(sys.argv[1]), flush=True)
        return
    for case in CASES:
        subprocess.run([sys.executable, __file__, case], check=True)


if __name__ == "__main__":
    main()
