"""Search quality on the instance-level task (smvs-dvd) and the category-level check (clothing-small).

    .venv/bin/python bench/instance_quality.py --encoder runs/q/encoder.pt --sets smvs-split,clothing
    .venv/bin/python bench/instance_quality.py --encoder imagenet --flip --sets smvs-split
    .venv/bin/python bench/instance_quality.py --write-split runs/smvs-split   # the CSVs only

The smvs-dvd protocol (split by product, so nothing is learned from the evaluated products'
phone photos): training sees the 100 catalog scans and the 200 phone photos of products
001-050, without labels (``train.csv``); evaluation asks with the 200 phone photos of products
051-100 (``queries-eval.csv``) against all 100 scans (``gallery.csv``), hit = same sku.
``smvs-all`` asks with all 400 phone photos; ``clothing`` asks with clothing-small test/ against
train/, hit = same category.

Every row is printed beside the off-the-shelf ImageNet EfficientNet-Lite0 (plain average
pooling at 224 px) on the same queries. Head options (``--pooling``, ``--flip``, ``--scales``,
``--whiten``) are applied on top of ``--encoder``'s weights; the whitening is learned on the
set's unlabeled training photos (smvs: ``train.csv``; clothing: train/).
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from encoder import Encoder
from training.evaluate import embed_labeled, resolve_encoder
from training.metrics import retrieval_report
from training.whiten import fit_whitening

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SMVS = DATA / "smvs-dvd"
CLOTHING = DATA / "clothing-small"
TRAIN_PRODUCTS = range(1, 51)  # products 001-050: their phone photos may be trained on


def write_smvs_split(out: Path, smvs: Path = SMVS) -> dict[str, Path]:
    """Write train.csv (100 scans + phone photos of 001-050), queries-eval.csv (phone photos of
    051-100), queries-all.csv and gallery.csv with absolute image paths; returns {name: path}."""
    out.mkdir(parents=True, exist_ok=True)
    with (smvs / "queries.csv").open(newline="") as f:
        queries = list(csv.DictReader(f))
    with (smvs / "catalog.csv").open(newline="") as f:
        catalog = list(csv.DictReader(f))

    def product(sku: str) -> int:
        return int(sku.rsplit("-", 1)[1])

    def write(name: str, rows: list[dict[str, str]]) -> Path:
        path = out / name
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=["image_path", "sku"])
            writer.writeheader()
            for row in rows:
                writer.writerow({"image_path": str((smvs / row["image_path"]).resolve()), "sku": row["sku"]})
        return path

    train_rows = catalog + [q for q in queries if product(q["sku"]) in TRAIN_PRODUCTS]
    return {
        "train": write("train.csv", train_rows),
        "queries-eval": write(
            "queries-eval.csv", [q for q in queries if product(q["sku"]) not in TRAIN_PRODUCTS]
        ),
        "queries-all": write("queries-all.csv", queries),
        "gallery": write("gallery.csv", catalog),
    }


def with_head(encoder: Encoder, args: argparse.Namespace) -> Encoder:
    """A copy of ``encoder`` with the head options of ``args`` (weights shared, whitening unfit)."""
    cfg = replace(
        encoder.config,
        embed_dim=0,
        pooling=args.pooling or encoder.config.pooling,
        gem_p=args.gem_p or encoder.config.gem_p,
        flip=args.flip or encoder.config.flip,
        scales=tuple(float(s) for s in args.scales.split(",")) if args.scales else encoder.config.scales,
        whiten=args.whiten or encoder.config.whiten,
        whiten_dim=args.whiten_dim if args.whiten else encoder.config.whiten_dim,
        image_size=args.image_size or encoder.config.image_size,
    )
    out = Encoder(cfg)
    out.backbone.load_state_dict(encoder.backbone.state_dict())
    if encoder.whitening is not None and out.whitening is not None and not args.whiten:
        out.whitening.load_state_dict(encoder.whitening.state_dict())
    return out.eval()


def evaluate(encoder: Encoder, queries: str, gallery: str, label: str, workers: int) -> dict[str, float]:
    q, q_labels = embed_labeled(encoder, queries, label, 32, workers)
    g, g_labels = embed_labeled(encoder, gallery, label, 32, workers)
    return retrieval_report(q, np.array(q_labels), g, np.array(g_labels))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--encoder", default="imagenet", help="encoder.pt, or 'imagenet' (off the shelf)")
    parser.add_argument("--sets", default="smvs-split,clothing", help="smvs-split, smvs-all, clothing")
    parser.add_argument("--pooling", choices=("avg", "gem"), default=None)
    parser.add_argument("--gem-p", type=float, default=None)
    parser.add_argument("--flip", action="store_true")
    parser.add_argument("--scales", default=None, help="e.g. 1,0.707")
    parser.add_argument("--image-size", type=int, default=None, help="embed at this size instead")
    parser.add_argument("--whiten", action="store_true")
    parser.add_argument("--whiten-dim", type=int, default=0)
    parser.add_argument("--whiten-shrinkage", type=float, default=0.5)
    parser.add_argument("--no-baseline", action="store_true", help="skip the off-the-shelf row")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--write-split", default=None, help="only write the smvs-dvd split CSVs here")
    args = parser.parse_args()

    if args.write_split:
        for name, path in write_smvs_split(Path(args.write_split)).items():
            print(f"{name}: {path}")
        return
    split = write_smvs_split(Path(tempfile.mkdtemp(prefix="smvs-split-")))
    sets = {
        "smvs-split": (str(split["queries-eval"]), str(split["gallery"]), "sku", str(split["train"])),
        "smvs-all": (str(split["queries-all"]), str(split["gallery"]), "sku", str(split["train"])),
        "clothing": (str(CLOTHING / "test"), str(CLOTHING / "train"), "category", str(CLOTHING / "train")),
    }
    candidate = with_head(resolve_encoder(args.encoder, "efficientnet_lite0", 224, 0), args)
    baseline = resolve_encoder("imagenet", "efficientnet_lite0", 224, 0)
    print(f"{torch.get_num_threads()} threads; candidate: {args.encoder} {candidate.config.to_dict()}")
    print("| set | encoder | recall@1 | recall@5 | recall@10 | mAP@10 | seconds |")
    print("|---|---|---|---|---|---|---|")
    for set_name in args.sets.split(","):
        queries, gallery, label, unlabeled = sets[set_name]
        rows = [("candidate", candidate)] + ([] if args.no_baseline else [("off-the-shelf", baseline)])
        for row_name, encoder in rows:
            started = time.perf_counter()
            if row_name == "candidate" and args.whiten:
                cpu = torch.device("cpu")
                fit_whitening(encoder, unlabeled, args.whiten_shrinkage, cpu, workers=args.workers)
            r = evaluate(encoder, queries, gallery, label, args.workers)
            print(
                f"| {set_name} | {row_name} | {r['recall@1']:.3f} | {r['recall@5']:.3f} | "
                f"{r['recall@10']:.3f} | {r['map@10']:.3f} | {time.perf_counter() - started:.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
