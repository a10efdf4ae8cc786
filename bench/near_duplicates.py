"""Where to put the near-duplicate threshold: cosine of re-encoded copies vs of distinct products.

    .venv/bin/python bench/near_duplicates.py --encoder demo/encoder.pt --catalog demo/catalog.csv

For every catalog photo, a "near-duplicate" copy is made the way shops re-upload photos (JPEG
quality 60, scaled to 70 %, 2 % cropped off each side). Prints percentiles of the cosine between
each photo and its copy, and of each photo's highest cosine to any *other* catalog photo; a good
threshold sits between the low tail of the first and the high tail of the second.
"""

from __future__ import annotations

import argparse
import io

import numpy as np
import torch
from PIL import Image

from encoder import Preprocessor, load_encoder
from encoder.catalog import read_catalog


def altered(data: bytes) -> bytes:
    image = Image.open(io.BytesIO(data)).convert("RGB")
    w, h = image.size
    image = image.crop((w // 50, h // 50, w - w // 50, h - h // 50))
    image = image.resize((int(w * 0.7), int(h * 0.7)), Image.Resampling.BILINEAR)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=60)
    return out.getvalue()


def embed(encoder, preprocess: Preprocessor, blobs: list[bytes], batch: int = 32) -> np.ndarray:
    out = []
    for start in range(0, len(blobs), batch):
        pixels = torch.stack([preprocess(b) for b in blobs[start : start + batch]])
        out.append(encoder.embed(pixels).numpy())
    return np.concatenate(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", default="demo/encoder.pt")
    parser.add_argument("--catalog", default="demo/catalog.csv")
    args = parser.parse_args()
    encoder = load_encoder(args.encoder)
    preprocess = Preprocessor(encoder.config)
    photos = [p.read_bytes() for item in read_catalog(args.catalog) for p in item.image_paths[:1]]
    original = embed(encoder, preprocess, photos)
    copies = embed(encoder, preprocess, [altered(b) for b in photos])
    same = np.sum(original * copies, axis=1)
    cross = original @ original.T
    np.fill_diagonal(cross, -1)
    nearest_other = cross.max(axis=1)
    qs = [0, 1, 5, 50, 95, 99, 100]
    print(f"{len(photos)} photos; percentiles {qs}")
    print("photo vs its re-encoded copy:   ", np.round(np.percentile(same, qs), 4).tolist())
    print("photo vs nearest other product: ", np.round(np.percentile(nearest_other, qs), 4).tolist())
    for t in (0.9, 0.93, 0.95, 0.97, 0.98):
        print(
            f"threshold {t}: copies caught {np.mean(same >= t):.3f}, "
            f"distinct products flagged {np.mean(nearest_other >= t):.3f}"
        )


if __name__ == "__main__":
    main()
