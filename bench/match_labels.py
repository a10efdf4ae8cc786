"""How trustworthy are the match labels? Shopper-like photos searched against a calibrated store.

    .venv/bin/python bench/match_labels.py --encoder demo/encoder.pt --store STORE \\
        --queries ../shared/data/clothing-small/test

Queries are photos in ``<category>/<file>`` folders, none of them in the catalog. For each, the
top result's match label (strong / weak / none, from the store's calibration) and whether its
category is the query's. Prints, per label, how many queries got it and how often the top result
was of the right category: a useful label is right more often the stronger it is.
"""

from __future__ import annotations

import argparse
from collections import Counter

import torch

from encoder import Preprocessor, list_image_files, load_encoder
from index import ProductStore
from index.thresholds import load


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", default="demo/encoder.pt")
    parser.add_argument("--store", required=True)
    parser.add_argument("--queries", required=True)
    args = parser.parse_args()
    encoder = load_encoder(args.encoder)
    preprocess = Preprocessor(encoder.config)
    files = list_image_files(args.queries)
    with ProductStore(args.store) as store:
        thresholds = load(store)
        if thresholds is None:
            raise SystemExit(f"{args.store} is not calibrated: run `lookalike index calibrate` first")
        counts: Counter[str] = Counter()
        right: Counter[str] = Counter()
        for start in range(0, len(files), 32):
            chunk = files[start : start + 32]
            vectors = encoder.embed(torch.stack([preprocess(p.read_bytes()) for p in chunk])).numpy()
            for path, hits in zip(chunk, store.search(vectors, k=1), strict=True):
                label = thresholds.label(hits[0].score)
                counts[label] += 1
                right[label] += hits[0].product.category == path.parent.name
    print(
        f"thresholds: strong >= {thresholds.strong:.3f}, weak >= {thresholds.weak:.3f}; {len(files)} queries"
    )
    print("| top result's label | queries | share | top-1 of the query's category |")
    print("|---|---|---|---|")
    for label in ("strong", "weak", "none"):
        n = counts[label]
        share = f"{right[label] / n:.3f}" if n else "-"
        print(f"| {label} | {n} | {n / len(files):.3f} | {share} |")


if __name__ == "__main__":
    main()
