"""Geometric re-ranking: recall@1/5/10 with and without it, and the CPU it adds per query.

    .venv/bin/python bench/rerank_quality.py [--encoder E.pt] [--k 10 25 50 100]

smvs-dvd: the 400 phone photos against the 100 catalog scans, and the 200 photos of products
051-100 alone (the split the training issue uses); hit = same sku. clothing-small: test/ against
train/, hit = same category. Each catalog is built into a store by the project's build (its
loader workers find the local features), each query embedded as the server does, searched with
``ProductStore.search`` and re-ranked with ``index.rerank.rerank`` for each k (no budget), and
with the store's default options (budget included). "CPU s/query" is ``time.process_time`` of
finding the query's local features and re-ranking (all threads); the global search is not in it.
Default encoder: the off-the-shelf ImageNet EfficientNet-Lite0 at 224 px.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from encoder import Encoder, Preprocessor, encoder_fingerprint, load_encoder, save_encoder  # noqa: E402
from encoder.catalog import read_catalog  # noqa: E402
from encoder.local_features import extract_features  # noqa: E402
from index.records import SearchHit  # noqa: E402
from index.rerank import RerankOptions, rerank  # noqa: E402
from index.store import ProductStore  # noqa: E402
from ops.build import embed_catalog  # noqa: E402
from training.init import build_encoder  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@dataclass(frozen=True)
class Query:
    path: Path
    label: str  # sku (smvs-dvd) or category (clothing-small)


@dataclass
class Row:
    name: str
    recall: dict[int, float]
    cpu_s: float  # per query, local features + re-ranking; 0 without re-ranking
    verified: float  # candidates verified per query
    moved: float  # share of queries whose first result changed


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--encoder", default=None, help="encoder.pt (default: ImageNet EfficientNet-Lite0)")
    parser.add_argument("--data", type=Path, default=DATA, help="the shared data folder")
    parser.add_argument("--k", type=int, nargs="+", default=[10, 25, 50, 100], help="candidates verified")
    parser.add_argument("--sets", nargs="+", default=["smvs-dvd", "clothing-small"])
    parser.add_argument("--workers", type=int, default=2, help="build's loader workers")
    return parser


def embed(encoder: Encoder, paths: Sequence[Path], batch: int = 32) -> np.ndarray:
    """(N, D) embeddings, preprocessed as the server does."""
    preprocess, out = Preprocessor(encoder.config), []
    with torch.no_grad():
        for start in range(0, len(paths), batch):
            pixels = torch.stack([preprocess(p.read_bytes()) for p in paths[start : start + batch]])
            out.append(encoder.embed(pixels).numpy())
    return np.concatenate(out)


def smvs_queries(root: Path) -> list[Query]:
    with (root / "queries.csv").open() as f:
        return [Query(root / r["image_path"], r["sku"]) for r in csv.DictReader(f)]


def clothing_queries(root: Path) -> list[Query]:
    return [Query(p, p.parent.name) for p in sorted((root / "test").glob("*/*.jpg"))]


def recall(ranked: list[list[str]], labels: Sequence[str], n: int) -> float:
    return float(np.mean([label in r[:n] for r, label in zip(ranked, labels, strict=True)]))


def evaluate(
    store: ProductStore,
    encoder: Encoder,
    queries: list[Query],
    label_of: Callable[[SearchHit], str],
    ks: Sequence[int],
) -> tuple[list[Row], list[list[SearchHit]]]:
    """Rows: without re-ranking, each k without a budget, the store's default options."""
    vectors = embed(encoder, [q.path for q in queries])
    depth = max(max(ks), store.rerank_options.k, 10)
    found = store.search(vectors, depth)
    labels = [q.label for q in queries]
    plain = [[label_of(h) for h in hits] for hits in found]
    rows = [Row("global only", {n: recall(plain, labels, n) for n in (1, 5, 10)}, 0.0, 0.0, 0.0)]
    settings = [(f"re-ranked, k={k}", RerankOptions(k=k, budget_ms=1e9)) for k in ks]
    d = store.rerank_options
    settings.append((f"default: k={d.k}, budget {d.budget_ms:g} ms", d))
    ranked: dict[str, list[list[str]]] = {name: [] for name, _ in settings}
    cpu: dict[str, list[float]] = {name: [] for name, _ in settings}
    verified: dict[str, list[int]] = {name: [] for name, _ in settings}
    for query, hits in zip(queries, found, strict=True):
        data = query.path.read_bytes()
        started = time.process_time()
        features = extract_features(data)
        extract_s = time.process_time() - started
        for name, options in settings:
            started = time.process_time()
            done = rerank(hits, features, store.local_features, options)
            cpu[name].append(extract_s + time.process_time() - started)
            ranked[name].append([label_of(h) for h in done.hits])
            verified[name].append(done.verified)
    for name, _ in settings:
        moved = float(np.mean([r[0] != p[0] for r, p in zip(ranked[name], plain, strict=True)]))
        rows.append(
            Row(
                name,
                {n: recall(ranked[name], labels, n) for n in (1, 5, 10)},
                statistics.mean(cpu[name]),
                statistics.mean(verified[name]),
                moved,
            )
        )
    return rows, found


def build(encoder: Encoder, catalog: Path, directory: Path, workers: int) -> ProductStore:
    store = ProductStore(directory, encoder_fingerprint(encoder), encoder.config.embed_dim, use_gpu=False)
    store.set_rerank_options(RerankOptions())
    report = embed_catalog(encoder, store, read_catalog(catalog), workers=workers, progress=False)
    print(f"  built {catalog}: {report.images} images in {report.seconds:.0f} s (with local features)")
    return store


def print_table(title: str, rows: list[Row]) -> None:
    print(f"\n{title}\n")
    print("| ranking | recall@1 | recall@5 | recall@10 | CPU s/query added | verified/query | top-1 moved |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r.name} | {r.recall[1]:.3f} | {r.recall[5]:.3f} | {r.recall[10]:.3f} | {r.cpu_s:.3f} | "
            f"{r.verified:.1f} | {r.moved:.3f} |"
        )


def main(args: argparse.Namespace) -> None:
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        if args.encoder is None:
            torch.manual_seed(0)
            args.encoder = Path(tmp) / "imagenet.pt"
            save_encoder(build_encoder("efficientnet_lite0", "imagenet", 224), args.encoder)
        encoder = load_encoder(args.encoder).eval()
        print(f"encoder {args.encoder} ({encoder.config.arch}, {encoder_fingerprint(encoder)[:12]})")
        if "smvs-dvd" in args.sets:
            root = args.data / "smvs-dvd"
            store = build(encoder, root / "catalog.csv", Path(tmp) / "smvs", args.workers)
            size = store.repository.mean_features_bytes()
            print(f"  local features: {size / 1024:.1f} KiB per catalog photo on average")
            queries = smvs_queries(root)
            rows, _ = evaluate(store, encoder, queries, lambda h: h.product.sku, args.k)
            print_table(f"smvs-dvd: {len(queries)} phone photos vs {store.count()} catalog scans", rows)
            split = [q for q in queries if int(q.label[-3:]) > 50]
            rows, _ = evaluate(store, encoder, split, lambda h: h.product.sku, args.k)
            print_table(f"smvs-dvd, products 051-100: {len(split)} phone photos vs all 100 scans", rows)
            store.close()
        if "clothing-small" in args.sets:
            root = args.data / "clothing-small"
            store = build(encoder, root / "train", Path(tmp) / "clothing", args.workers)
            queries = clothing_queries(root)
            rows, _ = evaluate(store, encoder, queries, lambda h: h.product.category or "", args.k)
            print_table(f"clothing-small: {len(queries)} test photos vs {store.count()} train photos", rows)
            store.close()


if __name__ == "__main__":
    main(get_args_parser().parse_args())
