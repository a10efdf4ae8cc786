"""Instance search at catalog scale: smvs-dvd's 100 covers among every clothing-small photo.

    .venv/bin/python bench/instance_scale.py [--encoder E.pt] [--work DIR]

The catalog: smvs-dvd's 100 reference scans plus all 3,781 clothing-small photos (train,
validation and test), each its own sku: 3,881 products. The queries: the 400 phone photos (hit =
same sku), reported for products 001-050 (where the parameters were chosen), 051-100, and all.
The store is made by the project's build with local matching forced on (``--rerank on``; the
codebook is trained on the catalog's own photos). Per query, side by side in one run:

- global: the embedding's recall@k (k = 1, 10, 20, 50, 100) over the store's FAISS search;
- local channel: the recall@k of the catalog-wide local index alone (``LocalIndex.search``);
- fused + verified: ``index.rerank.rerank`` with the store's options, as a search runs it;
- before (global top 100 verified): the re-ranking this replaced, rebuilt here: raw SIFT (500
  keypoints at 400 px, 66 KiB a photo), the global top 100 verified in order within 250 ms of CPU.

"CPU ms/query added" is ``time.process_time`` of finding the query's local features plus the
local search and verification (the global search and embedding are not in it), with
``OMP_WAIT_POLICY=PASSIVE`` as ``lookalike`` sets it.
Default encoder: the off-the-shelf ImageNet EfficientNet-Lite0 at 224 px.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as `lookalike` sets it: before numpy and torch load

import argparse
import csv
import functools
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from encoder import (  # noqa: E402
    Encoder,
    Preprocessor,
    encoder_fingerprint,  # noqa: E402
    load_encoder,
    save_encoder,
)
from encoder.catalog import read_catalog  # noqa: E402
from encoder.geometric import count_inliers  # noqa: E402
from encoder.images import decode_image  # noqa: E402
from encoder.local_features import LocalFeatures, extract_features, features_of_image  # noqa: E402
from index.records import SearchHit  # noqa: E402
from index.rerank import rerank  # noqa: E402
from index.store import ProductStore  # noqa: E402
from ops.build import embed_catalog  # noqa: E402
from ops.local_setup import prepare_local_index  # noqa: E402
from training.init import build_encoder  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
OLD_K, OLD_BUDGET_S, OLD_MIN_INLIERS = 100, 0.25, 15


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--encoder", default=None, help="encoder.pt (default: ImageNet EfficientNet-Lite0)")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--work", type=Path, default=Path(".bench-instance-scale"), help="kept between runs")
    parser.add_argument("--no-before", action="store_true", help="skip the global-top-100 re-ranking")
    parser.add_argument(
        "--distractors",
        type=int,
        nargs="+",
        default=[3781],
        help="clothing photos padded in (one store each)",
    )
    return parser


def embed(encoder: Encoder, paths: list[Path], batch: int = 32) -> np.ndarray:
    """(N, D) embeddings, preprocessed as the server does."""
    preprocess, out = Preprocessor(encoder.config), []
    with torch.no_grad():
        for start in range(0, len(paths), batch):
            pixels = torch.stack([preprocess(p.read_bytes()) for p in paths[start : start + batch]])
            out.append(encoder.embed(pixels).numpy())
    return np.concatenate(out)


def write_catalog(data: Path, path: Path, distractors: int) -> None:
    """smvs-dvd's 100 scans and the first ``distractors`` clothing-small photos (seeded order)."""
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["sku", "title", "category", "image_path"])
        with (data / "smvs-dvd" / "catalog.csv").open() as c:
            for row in csv.DictReader(c):
                out.writerow(
                    [row["sku"], row["title"], "dvd", str((data / "smvs-dvd" / row["image_path"]).resolve())]
                )
        photos = sorted((data / "clothing-small").glob("*/*/*.jpg"))
        for i in np.random.default_rng(0).permutation(len(photos))[:distractors]:
            photo = photos[i]
            out.writerow([f"CL-{photo.stem}", photo.stem, photo.parent.name, str(photo.resolve())])


def table_row(name: str, values: list[str]) -> str:
    return "| " + " | ".join([name, *values]) + " |"


def recall_at(rows: list[dict[str, object]], key: str, k: int) -> float:
    return float(np.mean([r["sku"] in list(r[key])[:k] for r in rows]))  # type: ignore[call-overload]


def old_rerank(
    hits: list[SearchHit], query: LocalFeatures, raw: dict[int, LocalFeatures], paths: dict[int, Path]
) -> list[SearchHit]:
    """The global top 100 verified in order with raw SIFT within 250 ms of CPU (the re-ranking replaced)."""
    started = time.process_time()
    counted: dict[int, int] = {}
    for position, hit in enumerate(hits[:OLD_K]):
        if time.process_time() - started >= OLD_BUDGET_S:
            break
        if hit.image_id not in raw:
            raw[hit.image_id] = features_of_image(
                decode_image(paths[hit.image_id].read_bytes(), draft_size=400), 500
            )
        counted[position] = count_inliers(query, raw[hit.image_id], enough=OLD_MIN_INLIERS)
    matched = sorted((p for p, n in counted.items() if n >= OLD_MIN_INLIERS), key=lambda p: -counted[p])
    return [hits[p] for p in matched] + [h for p, h in enumerate(hits) if p not in set(matched)]


def main(args: argparse.Namespace) -> None:
    torch.set_num_threads(2)
    args.work.mkdir(parents=True, exist_ok=True)
    if args.encoder is None:
        torch.manual_seed(0)
        args.encoder = args.work / "imagenet.pt"
        if not args.encoder.exists():
            save_encoder(build_encoder("efficientnet_lite0", "imagenet", 224), args.encoder)
    encoder = load_encoder(args.encoder).eval()
    for distractors in args.distractors:
        run(args, encoder, distractors)


def run(args: argparse.Namespace, encoder: Encoder, distractors: int) -> None:
    fingerprint = encoder_fingerprint(encoder)
    catalog = args.work / f"catalog-{distractors}.csv"
    write_catalog(args.data, catalog, distractors)
    store_dir = args.work / f"store-{fingerprint[:12]}-{distractors}"
    store = ProductStore(store_dir, fingerprint, encoder.config.embed_dim, use_gpu=False)
    items = read_catalog(catalog)
    todo = [i for i in items if i.sku not in store.existing_skus(i.sku for i in items)]
    if todo:
        started = time.perf_counter()
        decision = prepare_local_index(encoder, store, items, "on")
        print(
            decision.why if decision else "local index kept",
            f"(+ codebook: {time.perf_counter() - started:.0f} s)",
        )
        report = embed_catalog(encoder, store, todo, workers=2, progress=False)
        print(f"built {report.images} photos in {report.seconds:.0f} s")
    info = store.local.info()
    print(
        f"encoder {args.encoder} ({encoder.config.arch}, {fingerprint[:12]}); store {store.count()} products"
    )
    print(f"local index: {info}; {store.features.mean_bytes() / 1024:.1f} KiB of local data per photo")
    options = store.rerank_options
    print(f"options: {options}")

    with (args.data / "smvs-dvd" / "queries.csv").open() as f:
        queries = [(args.data / "smvs-dvd" / r["image_path"], r["sku"]) for r in csv.DictReader(f)]
    vectors = embed(encoder, [p for p, _ in queries])  # (400, D)
    found = store.search(vectors, 100)
    sku_of_image = {
        i: sku for i, (_, sku) in store.image_owners(np.array(sorted(store.local.image_ids()))).items()
    }
    paths: dict[int, Path] = {}  # image id -> file, for the re-ranking this replaced
    raw: dict[int, LocalFeatures] = {}
    rows: list[dict[str, object]] = []
    for (path, sku), vector, hits in zip(queries, vectors, found, strict=True):
        data = path.read_bytes()
        started = time.process_time()
        query = extract_features(data)
        extract = time.process_time() - started
        matches = store.local.search(query, 100)  # the local channel's own curve (not timed)
        local_ranked = [sku_of_image.get(int(i)) for i in matches.image_ids] if matches else []
        started = time.process_time()
        done = rerank(
            hits,
            query,
            store.local,
            store.local_features,
            functools.partial(store.image_hits, query=vector),
            options,
        )
        new_cpu = extract + time.process_time() - started
        row: dict[str, object] = {
            "sku": sku,
            "global": [h.product.sku for h in hits],
            "local": local_ranked,
            "new": done.hits[0].product.sku if done.hits else None,
            "new_cpu": new_cpu * 1000,
            "verified": done.verified,
        }
        if not args.no_before:
            for h in hits:
                for img in h.product.images:
                    paths.setdefault(img.id, store.image_file(img))
            started = time.process_time()
            old_query = features_of_image(decode_image(data, draft_size=400), 500)
            old = old_rerank(hits, old_query, raw, paths)
            row["old"], row["old_cpu"] = old[0].product.sku, (time.process_time() - started) * 1000
        rows.append(row)
    halves = (
        ("001-050 (choices made here)", lambda s: int(s[-3:]) <= 50),
        ("051-100", lambda s: int(s[-3:]) > 50),
        ("all", lambda s: True),
    )
    for name, keep in halves:
        part = [r for r in rows if keep(str(r["sku"]))]
        print(f"\nsmvs-dvd products {name}: {len(part)} phone photos against {store.count()} products\n")
        print("| ranking | recall@1 | @10 | @20 | @50 | @100 | CPU ms/query added |")
        print("|---|---|---|---|---|---|---|")
        for key, label in (("global", "global"), ("local", "local channel")):
            curve = [f"{recall_at(part, key, k):.3f}" for k in (1, 10, 20, 50, 100)]
            print(table_row(label, [*curve, "0" if key == "global" else ""]))
        new = float(np.mean([r["new"] == r["sku"] for r in part]))
        cpu = np.mean([r["new_cpu"] for r in part])
        checked = np.mean([r["verified"] for r in part])
        print(
            table_row(
                "fused + verified (new)",
                [f"{new:.3f}", "", "", "", "", f"{cpu:.1f} ({checked:.1f} verified)"],
            )
        )
        if not args.no_before:
            before = float(np.mean([r["old"] == r["sku"] for r in part]))
            cpu = np.mean([r["old_cpu"] for r in part])
            print(
                table_row("global top 100 verified (before)", [f"{before:.3f}", "", "", "", "", f"{cpu:.1f}"])
            )
    store.close()


if __name__ == "__main__":
    main(get_args_parser().parse_args())
