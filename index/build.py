"""``lookalike build``: embed a catalog in batches and store it (SQLite + FAISS snapshot).

Resumable: products whose sku is already in the store are skipped, so a build that was
interrupted continues where it stopped. A store made with another encoder is refused.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from encoder import (
    ImageDecodeError,
    Preprocessor,
    encoder_fingerprint,
    load_encoder,
    pick_device,
)
from index.catalog import CatalogItem, read_catalog
from index.records import NewProduct
from index.store import ProductStore


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Embed a product catalog into a store.", add_help=add_help)
    parser.add_argument("--catalog", required=True, help="folder (<category>/<sku>.jpg) or CSV")
    parser.add_argument("--encoder", required=True, help="encoder.pt from `lookalike train`")
    parser.add_argument("--store", required=True, help="store directory (created if missing)")
    parser.add_argument("--batch-size", type=int, default=32, help="images per forward pass")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader worker processes")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--no-progress", action="store_true")
    return parser


@dataclass
class _Loaded:
    item: CatalogItem
    images: list[bytes]
    tensors: list[torch.Tensor]
    error: str | None = None


class _CatalogImages(Dataset):
    """Reads and preprocesses every image of one catalog item; bad images are reported, not raised."""

    def __init__(self, items: list[CatalogItem], preprocess: Preprocessor) -> None:
        self.items, self.preprocess = items, preprocess

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> _Loaded:
        item = self.items[i]
        try:
            data = [p.read_bytes() for p in item.image_paths]
            tensors = [self.preprocess(d) for d in data]
        except (OSError, ImageDecodeError) as exc:
            return _Loaded(item, [], [], f"{item.sku}: {exc}")
        return _Loaded(item, data, tensors)


def main(args: argparse.Namespace) -> ProductStore:
    device = pick_device(args.device)
    encoder = load_encoder(args.encoder, map_location=device)
    cfg = encoder.config
    store = ProductStore(Path(args.store), encoder_fingerprint(encoder), cfg.embed_dim)
    items = read_catalog(args.catalog)
    done = store.existing_skus(i.sku for i in items)
    todo = [i for i in items if i.sku not in done]
    print(f"{len(items)} catalog items, {len(done)} already stored, {len(todo)} to embed on {device}")
    loader = DataLoader(
        _CatalogImages(todo, Preprocessor(cfg)),
        batch_size=max(1, args.batch_size),
        num_workers=args.workers,
        collate_fn=list,
    )
    started, n_images, failures = time.perf_counter(), 0, []
    with tqdm(total=len(todo), disable=args.no_progress, desc="embedding", unit="product") as bar:
        for batch in loader:
            good = [b for b in batch if b.error is None]
            failures += [b.error for b in batch if b.error is not None]
            if good:
                pixels = torch.stack([t for b in good for t in b.tensors])  # (M, 3, S, S)
                vectors = encoder.embed(pixels).cpu().numpy()  # (M, D)
                new, offset = [], 0
                for b in good:
                    n = len(b.tensors)
                    i = b.item
                    new.append(
                        NewProduct(
                            i.sku,
                            i.title,
                            i.category,
                            i.price,
                            i.attributes,
                            tuple(b.images),
                            vectors[offset : offset + n],
                        )
                    )
                    offset += n
                store.add_products(new)
                n_images += offset
            bar.update(len(batch))
    seconds = time.perf_counter() - started
    store.snapshot()
    rate = n_images / seconds if seconds > 0 else 0.0
    print(
        f"stored {n_images} images in {seconds:.1f} s ({rate:.1f} img/s); "
        f"store holds {store.count()} products"
    )
    for failure in failures:
        print(f"skipped {failure}")
    return store


if __name__ == "__main__":
    main(get_args_parser().parse_args()).close()
