"""When is a result a real match? Measuring the thresholds on the catalog itself.

Two score distributions, both measured on the shop's own photos with its own encoder:

- *same product*: a catalog photo vs. altered copies of it (cropped, scaled down, re-compressed,
  lighter or darker: what a shopper's photo of that very product does to it);
- *other product*: a catalog photo vs. the nearest photo of any *other* product.

A score at least the 5th percentile of *same product* (and above the 99th percentile of *other
product*) is a ``strong`` match; at least the median of *other product* (as close as the
catalog's own near neighbours are to each other) a ``weak`` one; below that ``none``: the
catalog has nothing like the photo. The *same* statistics need the encoder and are kept in the
store; the *other* ones are recomputed from the stored vectors on every rebuild. The server reads
the result through ``index.thresholds``.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image, ImageEnhance

from encoder import Encoder, Preprocessor
from index.store import ProductStore
from index.thresholds import MatchThresholds, load, save


def altered_copies(data: bytes) -> list[Image.Image]:
    """Three copies of a photo the way a shopper's camera changes it."""
    image = Image.open(io.BytesIO(data)).convert("RGB")
    w, h = image.size
    cropped = image.crop((w // 10, h // 10, w - w // 10, h - h // 10))
    small = image.resize((max(1, w * 3 // 5), max(1, h * 3 // 5)), Image.Resampling.BILINEAR)
    out = io.BytesIO()
    small.save(out, "JPEG", quality=50)
    recompressed = Image.open(io.BytesIO(out.getvalue())).convert("RGB")
    return [cropped, recompressed, ImageEnhance.Brightness(image).enhance(0.75)]


def same_product_scores(
    encoder: Encoder, store: ProductStore, sample: int = 200, seed: int = 0
) -> np.ndarray:
    """Cosine of sampled catalog photos to each of their altered copies: (sample * 3,)."""
    rows = store.repository.image_facts()
    if not rows:
        return np.zeros(0, np.float32)
    rng = np.random.default_rng(seed)
    picked = [rows[i] for i in rng.choice(len(rows), min(sample, len(rows)), replace=False)]
    preprocess = Preprocessor(encoder.config)
    scores = []
    for start in range(0, len(picked), 32):
        chunk = picked[start : start + 32]
        pixels, owners = [], []
        for j, r in enumerate(chunk):
            for copy in altered_copies(store.image_file(r.image).read_bytes()):
                out = io.BytesIO()
                copy.save(out, "PNG")
                pixels.append(preprocess(out.getvalue()))
                owners.append(j)
        vectors = encoder.embed(torch.stack(pixels)).cpu().numpy()  # (3B, D)
        stored = _embeddings(store, [chunk[j].id for j in owners])
        scores.append(np.sum(vectors * stored, axis=1))
    return np.concatenate(scores)


def _embeddings(store: ProductStore, image_ids: Sequence[int]) -> np.ndarray:
    """The stored embeddings of ``image_ids`` (repeats allowed), in their order: (N, D)."""
    ids, vectors = store.repository.embeddings(sorted(set(image_ids)))
    row = {int(i): n for n, i in enumerate(ids)}
    return vectors[[row[i] for i in image_ids]]


def other_product_scores(store: ProductStore, sample: int = 2000, seed: int = 0) -> np.ndarray:
    """Cosine of sampled stored photos to the nearest photo of another product: (<= sample,)."""
    rows = store.repository.image_facts()
    if len(rows) < 2:
        return np.zeros(0, np.float32)
    rng = np.random.default_rng(seed)
    picked = [rows[i] for i in rng.choice(len(rows), min(sample, len(rows)), replace=False)]
    owner = {r.id: r.product_id for r in rows}
    queries = _embeddings(store, [r.id for r in picked])
    scores, ids = store.nearest_images(queries, 21)
    best = []
    for r, row_scores, row_ids in zip(picked, scores, ids, strict=True):
        others = [
            s
            for s, i in zip(row_scores, row_ids, strict=True)
            if i >= 0 and owner.get(int(i)) != r.product_id
        ]
        if others:
            best.append(max(others))
    return np.array(best, np.float32)


def derive(same: np.ndarray, other: np.ndarray) -> MatchThresholds:
    """Thresholds from the two distributions (see the module docstring)."""
    if len(same) == 0 or len(other) == 0:
        raise ValueError("calibration needs a catalog of at least two products")
    same_p5, other_p50, other_p99 = (
        float(np.percentile(x, q)) for x, q in ((same, 5), (other, 50), (other, 99))
    )
    strong = min(max(same_p5, other_p99 + 1e-3), 1.0)
    weak = min(other_p50, strong - 1e-3)
    return MatchThresholds(
        round(strong, 4),
        round(weak, 4),
        round(same_p5, 4),
        round(other_p50, 4),
        round(other_p99, 4),
        len(other),
    )


def calibrate(encoder: Encoder, store: ProductStore, sample: int = 200) -> MatchThresholds:
    """Measure both distributions, keep the result in the store and return it."""
    thresholds = derive(same_product_scores(encoder, store, sample), other_product_scores(store))
    save(store, thresholds)
    return thresholds


def recalibrate_other(store: ProductStore) -> MatchThresholds | None:
    """After a rebuild: the *other product* figures from the stored vectors, the *same product*
    one kept; None when the store was never calibrated."""
    old = load(store)
    if old is None:
        return None
    other = other_product_scores(store)
    if len(other) == 0:
        return old
    thresholds = derive(np.array([old.same_p5]), other)
    save(store, thresholds)
    return thresholds
