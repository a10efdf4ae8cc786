"""Instance-level retrieval on smvs-dvd, split by product: the phone photos of a range of
products as queries, against every reference scan (the other products stay as distractors).

    .venv/bin/python bench/smvs_eval.py --products 51-100 \\
        --encoder encoder.pt --baseline pretrained --baseline colour-hist --report report.html

Everything after this script's own options goes to `lookalike eval` as it is. The default range,
051-100, is the evaluation half of the split the data's README suggests (train on the photos of
001-050), so an encoder fine-tuned on the first half is measured on products it never saw. The
filtered queries CSV (absolute image paths) is written to a temporary folder, under a name that
says the range, and removed afterwards.
"""

from __future__ import annotations

import argparse
import csv
import re
import tempfile
from pathlib import Path

from training.evaluate import get_args_parser as eval_args
from training.evaluate import main as evaluate

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "smvs-dvd"


def product_range(text: str) -> tuple[int, int]:
    """'51-100' -> (51, 100): the first and last product number, inclusive."""
    match = re.fullmatch(r"(\d+)-(\d+)", text)
    if not match or int(match[1]) > int(match[2]):
        raise argparse.ArgumentTypeError(f"expected FIRST-LAST product numbers such as 51-100, got {text!r}")
    return int(match[1]), int(match[2])


def product_number(sku: str) -> int:
    """'DVD-051' -> 51: the number a sku ends in."""
    match = re.search(r"(\d+)$", sku)
    if match is None:
        raise ValueError(f"sku {sku!r} does not end in a product number")
    return int(match[1])


def filtered_queries(queries: Path, first: int, last: int, out: Path) -> int:
    """Write the rows of ``queries`` whose sku ends in a number within first..last to ``out``,
    with absolute image paths; returns how many."""
    with queries.open(newline="") as f:
        reader = csv.DictReader(f)
        fields = list(reader.fieldnames or [])
        rows = [r for r in reader if first <= product_number(r["sku"]) <= last]
    for row in rows:
        row["image_path"] = str((queries.parent / row["image_path"]).resolve())
    with out.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return len(rows)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DATA, help="the smvs-dvd folder")
    parser.add_argument("--products", type=product_range, default=(51, 100), help="FIRST-LAST")
    args, rest = parser.parse_known_args()
    first, last = args.products
    with tempfile.TemporaryDirectory() as tmp:
        queries = Path(tmp) / f"smvs-dvd-queries-{first:03d}-{last:03d}.csv"
        n = filtered_queries(args.data / "queries.csv", first, last, queries)
        if n == 0:
            raise SystemExit(f"no query of {args.data / 'queries.csv'} is of a product in {first}-{last}")
        print(f"{n} phone photos of products {first:03d}-{last:03d} against every reference scan")
        gallery = args.data / "catalog.csv"
        argv = ["--gallery", str(gallery), "--queries", str(queries), "--label-column", "sku", *rest]
        evaluate(eval_args().parse_args(argv))


if __name__ == "__main__":
    main()
