"""``lookalike build``: embed a catalog in batches and store it (SQLite + FAISS snapshot).

Resumable: products whose sku is already in the store are skipped, so a build that was
interrupted continues where it stopped. A store made with another encoder is refused.
"""

from __future__ import annotations

import argparse
import itertools
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from encoder import (
    Encoder,
    ImageDecodeError,
    Preprocessor,
    encoder_fingerprint,
    load_encoder,
    pick_device,
)
from encoder.catalog import CatalogItem, read_catalog
from encoder.local_features import LocalFeatures
from index.features import features_of
from index.records import NewProduct
from index.rerank import RerankOptions
from index.store import ProductStore
from index.thresholds import META_KEY
from ops.build_report import BuildReport
from ops.calibrate import calibrate
from ops.local_setup import prepare_local_index
from ops.maintenance import describe_thresholds


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Embed a product catalog into a store.", add_help=add_help)
    parser.add_argument("--catalog", required=True, help="folder (<category>/<sku>.jpg) or CSV")
    parser.add_argument("--encoder", required=True, help="encoder.pt from `lookalike train`")
    parser.add_argument("--store", required=True, help="store directory (created if missing)")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("LOOKALIKE_DATABASE_URL") or None,
        help="postgresql://... keeps the catalog in PostgreSQL (default: LOOKALIKE_DATABASE_URL; SQLite)",
    )
    parser.add_argument("--batch-size", type=int, default=32, help="products per forward pass")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader worker processes")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda; with --ray: the workers'")
    parser.add_argument(
        "--ray",
        metavar="ADDRESS",
        default=None,
        help="embed on a Ray cluster (ray://host:10001, host:port) or `local` (a new Ray here)",
    )
    parser.add_argument(
        "--ray-workers", type=int, default=None, help="Ray actors, one model each (default: GPUs, else CPUs)"
    )
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument(
        "--index-type",
        default="auto",
        help="FAISS index after the build: auto, Flat, HNSW32, IVF1024,Flat, ...",
    )
    parser.add_argument("--memory-budget-mb", type=int, default=4096, help="memory `auto` may use")
    parser.add_argument(
        "--calibration-sample",
        type=int,
        default=100,
        help="catalog photos for the match thresholds (0: skip)",
    )
    rerank = parser.add_argument_group(
        "local matching (docs/MATCHING.md); default: the store's, or decided on the catalog's own photos"
    )
    rerank.add_argument(
        "--rerank",
        choices=("auto", "on", "off"),
        default=None,
        help="auto (a new store's default): measure whether local matching pays on a sample of the "
        "catalog; on: keep a local index of every photo and verify search results by it; off: none",
    )
    rerank.add_argument("--decision-sample", type=int, default=100, help="catalog photos auto measures")
    rerank.add_argument("--rerank-k", type=int, default=None, help="shortlist candidates verified per search")
    rerank.add_argument("--rerank-budget-ms", type=float, default=None, help="CPU per search for that")
    rerank.add_argument("--rerank-min-inliers", type=int, default=None, help="inliers of a verified match")
    return parser


def rerank_options(args: argparse.Namespace, stored: RerankOptions) -> RerankOptions:
    """The store's re-ranking options with those given on the command line."""
    return replace(
        stored,
        k=stored.k if args.rerank_k is None else args.rerank_k,
        budget_ms=stored.budget_ms if args.rerank_budget_ms is None else args.rerank_budget_ms,
        min_inliers=stored.min_inliers if args.rerank_min_inliers is None else args.rerank_min_inliers,
    )


@dataclass
class _Loaded:
    item: CatalogItem
    images: list[bytes]
    tensors: list[torch.Tensor]
    error: str | None = None
    features: tuple[LocalFeatures | None, ...] | None = None


class _CatalogImages(Dataset):
    """Reads and preprocesses every image of one catalog item, and finds their local features
    when asked (in the loader's workers); bad images are reported, not raised."""

    def __init__(self, items: list[CatalogItem], preprocess: Preprocessor, local_features: bool) -> None:
        self.items, self.preprocess, self.local_features = items, preprocess, local_features

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> _Loaded:
        item = self.items[i]
        try:
            data = [p.read_bytes() for p in item.image_paths]
            tensors = [self.preprocess(d) for d in data]
        except (OSError, ImageDecodeError) as exc:
            return _Loaded(item, [], [], f"{item.sku}: {exc}")
        return _Loaded(item, data, tensors, None, features_of(data) if self.local_features else None)


@dataclass
class _Batch:
    """One loader batch, collated in the worker, so its pixels cross to the model as one tensor."""

    items: list[CatalogItem]
    images: list[tuple[bytes, ...]]
    pixels: torch.Tensor | None  # (M, 3, S, S): every image of ``items``, in order; None when M = 0
    failures: list[str]
    features: list[tuple[LocalFeatures | None, ...] | None]  # per item


def _collate(loaded: list[_Loaded]) -> _Batch:
    good = [b for b in loaded if b.error is None]
    tensors = [t for b in good for t in b.tensors]
    return _Batch(
        [b.item for b in good],
        [tuple(b.images) for b in good],
        torch.stack(tensors) if tensors else None,
        [b.error for b in loaded if b.error is not None],
        [b.features for b in good],
    )


def embed_catalog(
    encoder: Encoder,
    store: ProductStore,
    items: list[CatalogItem],
    batch_size: int = 32,
    workers: int = 2,
    progress: bool = True,
) -> BuildReport:
    """Embed ``items`` and add them to ``store``, one SQLite transaction per batch.

    Workers read, decode and preprocess (one torch thread each), and find the local features
    when the store re-ranks, while the main process runs the model; unreadable items are
    reported in ``BuildReport.failures``, not raised.
    """
    loader = DataLoader(
        _CatalogImages(items, Preprocessor(encoder.config), store.local.ready),
        batch_size=max(1, batch_size),
        num_workers=workers,
        collate_fn=_collate,
    )
    report, started = BuildReport(), time.perf_counter()
    with tqdm(total=len(items), disable=not progress, desc="embedding", unit="product") as bar:
        for batch in loader:
            report.failures += batch.failures
            if batch.pixels is not None:
                vectors = encoder.embed(batch.pixels).cpu().numpy()  # (M, D)
                ends = itertools.accumulate(len(images) for images in batch.images)
                new, start = [], 0
                for i, images, features, end in zip(
                    batch.items, batch.images, batch.features, ends, strict=True
                ):
                    new.append(
                        NewProduct(
                            i.sku,
                            i.title,
                            i.category,
                            i.price,
                            i.attributes,
                            images,
                            vectors[start:end],
                            features,
                        )
                    )
                    start = end
                report.near_duplicates += store.add_products(new).near_duplicates
                report.images += len(vectors)
            bar.update(len(batch.items) + len(batch.failures))
    report.seconds = time.perf_counter() - started
    return report


def main(args: argparse.Namespace) -> ProductStore:
    device = pick_device("auto" if args.ray else args.device)  # with --ray, --device is the workers'
    encoder = load_encoder(args.encoder, map_location=device)
    store = ProductStore(
        Path(args.store),
        encoder_fingerprint(encoder),
        encoder.config.embed_dim,
        database_url=args.database_url,
    )
    items = read_catalog(args.catalog)
    decision = (
        prepare_local_index(encoder, store, items, args.rerank, args.decision_sample) if items else None
    )
    if decision is not None:
        print(decision.why)
    store.set_rerank_options(rerank_options(args, store.rerank_options))
    done = store.existing_skus(i.sku for i in items)
    todo = [i for i in items if i.sku not in done]
    where = f"Ray ({args.ray})" if args.ray else device
    print(f"{len(items)} catalog items, {len(done)} already stored, {len(todo)} to embed on {where}")
    if args.ray and todo:
        from ops.build_ray import embed_catalog_ray, ray_session

        with ray_session(args.ray):
            report = embed_catalog_ray(
                encoder, store, todo, args.ray_workers, args.batch_size, args.device, not args.no_progress
            )
    else:
        report = embed_catalog(encoder, store, todo, args.batch_size, args.workers, not args.no_progress)
    store.snapshot()
    print(
        f"stored {report.images} images in {report.seconds:.1f} s ({report.images_per_s:.1f} img/s); "
        f"store holds {store.count()} products"
    )
    for failure in report.failures:
        print(f"skipped {failure}")
    for d in report.near_duplicates[:20]:
        print(f"near-duplicate: image {d.image_index} of {d.sku} ~ {d.other_sku} (cosine {d.score:.3f})")
    if len(report.near_duplicates) > 20:
        print(f"... {len(report.near_duplicates)} near-duplicate images in all")
    if report.images or store.get_meta(META_KEY) is None:  # a resumed, finished build changes nothing
        print(store.rebuild(args.index_type, args.memory_budget_mb << 20).summary())
        if args.calibration_sample > 0 and store.count() >= 2:
            print(describe_thresholds(calibrate(encoder, store, args.calibration_sample)))
    return store


if __name__ == "__main__":
    main(get_args_parser().parse_args()).close()
