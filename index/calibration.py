"""When is a result a real match? Thresholds calibrated on the catalog itself.

Two score distributions, both measured on the shop's own photos with its own encoder:

- *same product*: a catalog photo vs. altered copies of it (cropped, scaled down, re-compressed,
  lighter or darker: what a shopper's photo of that very product does to it);
- *other product*: a catalog photo vs. the nearest photo of any *other* product.

A score at least the 5th percentile of *same product* (and above the 99th percentile of *other
product*) is a ``strong`` match; at least the median of *other product* (as close as the
catalog's own near neighbours are to each other) a ``weak`` one; below that ``none``: the
catalog has nothing like the photo. The *same* statistics need the encoder and are kept in the
store; the *other* ones are recomputed from the stored vectors on every rebuild.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image, ImageEnhance

from encoder import Encoder, Preprocessor
from index.db import decode_embeddings
from index.records import ProductImage
from index.store import ProductStore

Match = Literal["strong", "weak", "none"]
META_KEY = "match_calibration"


@dataclass(frozen=True)
class MatchThresholds:
    strong: float
    weak: float
    same_p5: float  # 5th percentile of photo vs. its altered copies
    other_p50: float  # median of photo vs. nearest other product's photo
    other_p99: float
    images: int  # catalog photos the figures come from

    def label(self, score: float) -> Match:
        return "strong" if score >= self.strong else "weak" if score >= self.weak else "none"


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
    rows = store.db.query("SELECT id, content_hash, path, embedding FROM images")
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
            image = ProductImage(r["id"], r["content_hash"], r["path"])
            for copy in altered_copies(store.image_file(image).read_bytes()):
                out = io.BytesIO()
                copy.save(out, "PNG")
                pixels.append(preprocess(out.getvalue()))
                owners.append(j)
        vectors = encoder.embed(torch.stack(pixels)).cpu().numpy()  # (3B, D)
        stored = _embeddings([chunk[j] for j in owners], store.dim)
        scores.append(np.sum(vectors * stored, axis=1))
    return np.concatenate(scores)


def _embeddings(rows: Sequence[Any], dim: int) -> np.ndarray:
    """The stored embeddings of image ``rows`` (with ``id`` and ``embedding``): (N, dim)."""
    return decode_embeddings([r["id"] for r in rows], [bytes(r["embedding"]) for r in rows], dim)


def other_product_scores(store: ProductStore, sample: int = 2000, seed: int = 0) -> np.ndarray:
    """Cosine of sampled stored photos to the nearest photo of another product: (<= sample,)."""
    rows = store.db.query("SELECT id, product_id, embedding FROM images")
    if len(rows) < 2:
        return np.zeros(0, np.float32)
    rng = np.random.default_rng(seed)
    picked = [rows[i] for i in rng.choice(len(rows), min(sample, len(rows)), replace=False)]
    owner = {r["id"]: r["product_id"] for r in rows}
    queries = _embeddings(picked, store.dim)
    scores, ids = store.nearest_images(queries, 21)
    best = []
    for r, row_scores, row_ids in zip(picked, scores, ids, strict=True):
        others = [
            s
            for s, i in zip(row_scores, row_ids, strict=True)
            if i >= 0 and owner.get(int(i)) != r["product_id"]
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


def save(store: ProductStore, thresholds: MatchThresholds) -> None:
    store.set_meta(META_KEY, json.dumps(asdict(thresholds)))


def load(store: ProductStore) -> MatchThresholds | None:
    raw = store.get_meta(META_KEY)
    return MatchThresholds(**json.loads(raw)) if raw else None
