"""``lookalike index rebuild|check|outliers|calibrate|info|backup|features|rerank``: look after a
product store."""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict, replace
from pathlib import Path

from encoder import encoder_fingerprint, load_encoder
from index.features import features_of
from index.records import ProductImage
from index.store import ProductStore
from index.thresholds import MatchThresholds
from index.thresholds import load as load_thresholds
from ops.backup import backup_store
from ops.calibrate import calibrate, recalibrate_other
from ops.check import check_store
from ops.local_setup import CODEBOOK_PHOTOS, DECISION_KEY, sample_photos, train_codebook_from
from ops.outliers import outlier_scores


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the maintenance subcommands to ``parser``."""
    actions = parser.add_subparsers(dest="action", required=True)
    rebuild = actions.add_parser("rebuild", help="rebuild the FAISS index, maybe of another type")
    rebuild.add_argument(
        "--type",
        default="auto",
        help="auto (from the vector count and memory budget), Flat, HNSW32, IVF1024,Flat, IVF1024,PQ16, ...",
    )
    rebuild.add_argument("--memory-budget-mb", type=int, default=4096, help="memory `auto` may use")
    check = actions.add_parser("check", help="integrity check: SQLite, image files, embeddings, FAISS")
    check.add_argument("--no-verify-files", action="store_true", help="skip hashing every image file")
    outliers = actions.add_parser("outliers", help="catalog images farthest from their neighbours")
    outliers.add_argument("--top", type=int, default=20)
    outliers.add_argument("--k", type=int, default=10, help="neighbours averaged per image")
    outliers.add_argument("--json", action="store_true", help="one JSON object per line")
    calibrate = actions.add_parser("calibrate", help="match thresholds (strong/weak/none) from the catalog")
    calibrate.add_argument("--encoder", required=True, help="the store's encoder.pt")
    calibrate.add_argument("--sample", type=int, default=200, help="catalog photos to alter and embed")
    actions.add_parser("info", help="what the store holds and which index serves it")
    actions.add_parser(
        "features",
        help="the local index: train its codebook on the store's own photos when it has none, then find "
        "the compact local features of every photo without them",
    )
    rerank = actions.add_parser("rerank", help="show or change the local matching options")
    rerank.add_argument("--set", choices=("on", "off"), default=None, dest="enabled")
    rerank.add_argument("--k", type=int, default=None, help="shortlist candidates verified per search")
    rerank.add_argument("--shortlist", type=int, default=None, help="candidates the local index names")
    rerank.add_argument("--budget-ms", type=float, default=None, help="CPU per search for both")
    rerank.add_argument("--min-inliers", type=int, default=None, help="inliers of a verified match")
    rerank.add_argument(
        "--decisive-inliers", type=int, default=None, help="inliers that end verification early"
    )
    backup = actions.add_parser(
        "backup", help="copy the store while it serves: SQLite online backup, FAISS snapshot, image files"
    )
    backup.add_argument("--store", required=True, help="store directory")
    backup.add_argument("--to", required=True, help="new directory for the copy (absent or empty)")
    for sub in (
        rebuild,
        check,
        outliers,
        calibrate,
        actions.choices["info"],
        actions.choices["features"],
        rerank,
    ):
        sub.add_argument("--store", required=True, help="store directory")
        sub.add_argument(
            "--database-url",
            default=os.environ.get("LOOKALIKE_DATABASE_URL") or None,
            help="postgresql://... when the catalog is in PostgreSQL (default: LOOKALIKE_DATABASE_URL)",
        )


def describe_thresholds(t: MatchThresholds) -> str:
    return (
        f"match thresholds from {t.images} catalog photos: strong >= {t.strong:.3f}, weak >= {t.weak:.3f} "
        f"(altered copies p5 {t.same_p5:.3f}; nearest other product p50 {t.other_p50:.3f}, "
        f"p99 {t.other_p99:.3f})"
    )


def add_missing_features(store: ProductStore) -> str:
    """Train the store's codebook on its own photos when it has none, then find and keep the
    local features of every stored photo without them; a summary line."""
    if not store.local.ready:
        photos = [store.image_file(fact.image) for fact in store.repository.image_facts()]
        try:
            codebook = train_codebook_from(sample_photos(photos, CODEBOOK_PHOTOS))
        except ValueError as exc:  # too few keypoints in the whole store
            raise SystemExit(f"no local index for {store.directory}: {exc}") from exc
        store.set_codebook(codebook)
        print(f"trained a codebook of {codebook.size} words on {min(len(photos), CODEBOOK_PHOTOS)} photos")
    kept = 0
    for batch in store.features.missing():
        images = [store.image_file(ProductImage(*row)).read_bytes() for row in batch]
        found = features_of(images)
        kept += store.save_local_features(
            {row[0]: f for row, f in zip(batch, found, strict=True) if f is not None}
        )
    return (
        f"local features found for {kept} photos; {store.features.count()} of {store.image_count()} have them"
    )


def main(args: argparse.Namespace) -> int:
    """Run one action; the exit status is 1 when ``check`` finds problems, or ``backup`` copied
    image files whose sha256 is not the recorded one."""
    if args.action == "backup":
        report = backup_store(args.store, args.to)
        for rel in report.damaged:
            print(f"damaged in the store (copied as it is): {rel} does not match its sha256")
        print(f"{report.summary()} -> {args.to}")
        return 1 if report.damaged else 0
    url = args.database_url
    if not url and not (Path(args.store) / ProductStore.DB_NAME).exists():
        raise FileNotFoundError(f"{args.store} holds no product store")
    with ProductStore(args.store, database_url=url) as store:
        if args.action == "rebuild":
            print(store.rebuild(args.type, args.memory_budget_mb << 20).summary())
            if (thresholds := recalibrate_other(store)) is not None:
                print(describe_thresholds(thresholds))
        elif args.action == "calibrate":
            encoder = load_encoder(args.encoder)
            if encoder_fingerprint(encoder) != store.fingerprint:
                raise ValueError(f"{args.encoder} is not the encoder this store was built with")
            print(describe_thresholds(calibrate(encoder, store, args.sample)))
        elif args.action == "check":
            problems = check_store(store, verify_files=not args.no_verify_files)
            for problem in problems:
                print(problem)
            print(
                f"{args.store}: {len(problems)} problem(s); "
                f"{store.count()} products, {store.image_count()} images"
            )
            return 1 if problems else 0
        elif args.action == "features":
            print(add_missing_features(store))
        elif args.action == "rerank":
            given = {
                name: getattr(args, name)
                for name in ("k", "shortlist", "budget_ms", "min_inliers", "decisive_inliers")
                if getattr(args, name) is not None
            }
            if args.enabled is not None:
                given["enabled"] = args.enabled == "on"
            store.set_rerank_options(replace(store.rerank_options, **given))
            print(store.rerank_options.to_json())
            if store.rerank_options.enabled and not store.local.ready:
                print(f"the store has no local index yet: lookalike index features --store {args.store}")
        elif args.action == "outliers":
            for o in outlier_scores(store, k=args.k, top=args.top):
                if args.json:
                    print(json.dumps(o.__dict__))
                else:
                    print(f"{o.score:.4f}  image {o.image_id}  product {o.product_id}  {o.sku}")
        else:
            info = {"products": store.count(), "images": store.image_count(), **store.index_info()}
            info["match_calibration"] = (t := load_thresholds(store)) and asdict(t)
            info["rerank"] = asdict(store.rerank_options)
            decision = store.get_meta(DECISION_KEY)
            info["local_decision"] = json.loads(decision) if decision else None
            info["local_index"] = store.local.info()
            info["images_with_local_features"] = store.features.count()
            info["local_bytes_per_photo"] = round(store.features.mean_bytes())
            json.dump(info, sys.stdout, indent=2)
            print()
    return 0
