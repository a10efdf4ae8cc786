"""What ``lookalike build`` decides about local matching for a few catalogs, and why.

    .venv/bin/python bench/local_decision.py [--encoder E.pt] [--sample 100]

For each catalog: the share of sampled photos whose synthetic shopper view keeps 60 inliers,
the median inliers, the shares of views found locally and by the encoder's cosine, and the
decision (``ops/local_setup.decide``). Default encoder: the demo's.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from encoder import load_encoder  # noqa: E402
from encoder.catalog import read_catalog  # noqa: E402
from ops.local_setup import decide  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--encoder", type=Path, default=ROOT / "demo" / "encoder.pt")
    parser.add_argument("--sample", type=int, default=100)
    args = parser.parse_args()
    encoder = load_encoder(args.encoder).eval()
    catalogs = {
        "smvs-dvd covers": DATA / "smvs-dvd" / "catalog.csv",
        "clothing-small train": DATA / "clothing-small" / "train",
        "demo catalog": ROOT / "demo" / "catalog.csv",
    }
    print("| catalog | photos | keep >= 60 inliers | median inliers | found locally | globally | on | s |")
    print("|---|---|---|---|---|---|---|---|")
    for name, source in catalogs.items():
        d, _ = decide(encoder, read_catalog(source), args.sample)
        print(
            f"| {name} | {d.photos} | {d.textured:.2f} | {d.median_inliers:.0f} | {d.local_found:.2f} | "
            f"{d.global_found:.2f} | {'on' if d.enabled else 'off'} | {d.seconds:.1f} |"
        )


if __name__ == "__main__":
    main()
