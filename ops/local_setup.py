"""Whether local matching pays on a store, decided on its own photos, and its codebook.

At ``lookalike build`` on a store without a local index, a sample of catalog photos (100 by
default) is turned into synthetic shopper views (``ops/shopper_views.py``) and each view is
matched to its own photo, globally (is its photo the view's nearest among the sample's photos,
by the encoder's cosine?) and locally (SIFT inliers of a homography between them). Printed and
packaged goods keep dozens to hundreds of inliers under tilt, blur, glare and compression;
garments, fruit and plain goods keep few. Local matching pays when at least ``MIN_TEXTURED`` of
the photos keep ``TEXTURED_INLIERS`` inliers: then the codebook is trained (``index/local``) on
up to 1,000 photos' descriptors and every photo gets compact features; otherwise the store keeps
none and a search pays nothing for local matching. Measured here (100 photos each,
bench/local_decision.py): smvs-dvd's covers 1.00 textured, clothing-small 0.62, the demo 0.09.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from encoder import Encoder, Preprocessor
from encoder.catalog import CatalogItem
from encoder.geometric import count_inliers
from encoder.images import ImageDecodeError, decode_image
from encoder.local_features import LocalFeatures, features_of_image
from index.local.codebook import Codebook, words_for
from index.store import ProductStore
from ops.shopper_views import shopper_view

DECISION_KEY = "local_decision"
TEXTURED_INLIERS = 60
MIN_TEXTURED = 0.75
CODEBOOK_PHOTOS = 1000


@dataclass(frozen=True)
class LocalDecision:
    """The figures behind a store's choice, kept in its meta and printed by the build."""

    enabled: bool
    photos: int  # sampled catalog photos
    textured: float  # share whose shopper view keeps TEXTURED_INLIERS inliers
    local_found: float  # share whose view is verified against its photo (>= 15 inliers)
    global_found: float  # share whose view's nearest sampled photo (cosine) is its own
    median_inliers: float
    forced: str | None = None  # "on"/"off" when the command line chose
    seconds: float = 0.0

    @property
    def why(self) -> str:
        how = f"forced {self.forced}; " if self.forced else ""
        return (
            f"local matching {'on' if self.enabled else 'off'} ({how}{self.photos} photos: "
            f"{self.textured:.0%} keep >= {TEXTURED_INLIERS} inliers in a shopper view (needs "
            f"{MIN_TEXTURED:.0%}), median {self.median_inliers:.0f}; views found locally "
            f"{self.local_found:.0%}, globally {self.global_found:.0%}; {self.seconds:.1f} s)"
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self))


def sample_photos(paths: Sequence[Path], count: int, seed: int = 0) -> list[Image.Image]:
    """Up to ``count`` of the photos at ``paths``, chosen at random (seeded), decoded; unreadable
    ones are skipped (the build reports them)."""
    photos = []
    for i in np.random.default_rng(seed).permutation(len(paths))[:count]:
        try:
            photos.append(decode_image(paths[i].read_bytes()))
        except (OSError, ImageDecodeError):
            continue
    return photos


def _photos(items: Sequence[CatalogItem], count: int, seed: int) -> list[Image.Image]:
    """One photo of each of up to ``count`` catalog items."""
    return sample_photos([item.image_paths[0] for item in items], count, seed)


def decide(
    encoder: Encoder,
    items: Sequence[CatalogItem],
    sample: int = 100,
    seed: int = 0,
    forced: str | None = None,
) -> tuple[LocalDecision, list[LocalFeatures]]:
    """Measure the sample; return the decision and the sampled photos' features (for training)."""
    started = time.perf_counter()
    photos = _photos(items, sample, seed)
    rng = np.random.default_rng(seed)
    views = [shopper_view(p, rng) for p in photos]
    features = [features_of_image(p) for p in photos]
    inliers = np.array(
        [count_inliers(features_of_image(v), f) for v, f in zip(views, features, strict=True)], dtype=float
    )
    preprocess = Preprocessor(encoder.config)
    global_found = 0.0
    if photos:
        with torch.no_grad():
            device = next(encoder.parameters()).device
            own = (
                encoder.embed(torch.stack([preprocess.transform(p) for p in photos]).to(device)).cpu().numpy()
            )
            seen = (
                encoder.embed(torch.stack([preprocess.transform(v) for v in views]).to(device)).cpu().numpy()
            )
        global_found = float(np.mean((seen @ own.T).argmax(1) == np.arange(len(photos))))
    textured = float(np.mean(inliers >= TEXTURED_INLIERS)) if len(inliers) else 0.0
    enabled = textured >= MIN_TEXTURED if forced is None else forced == "on"
    decision = LocalDecision(
        enabled,
        len(photos),
        round(textured, 3),
        round(float(np.mean(inliers >= 15)) if len(inliers) else 0.0, 3),
        round(global_found, 3),
        float(np.median(inliers)) if len(inliers) else 0.0,
        forced,
        round(time.perf_counter() - started, 1),
    )
    return decision, features


def train_codebook(items: Sequence[CatalogItem], sampled: Sequence[LocalFeatures], seed: int = 0) -> Codebook:
    """A codebook from the sampled photos' descriptors and more catalog photos, up to ``CODEBOOK_PHOTOS``."""
    more = _photos(items, max(0, CODEBOOK_PHOTOS - len(sampled)), seed + 1)  # decoded only as many as used
    return train_codebook_from(more, sampled, seed)


def train_codebook_from(
    photos: Sequence[Image.Image], found: Sequence[LocalFeatures] = (), seed: int = 0
) -> Codebook:
    """A codebook from the descriptors of ``photos`` (and of features ``found`` already); its
    size from their number (``words_for``: 8,192 words from about 164,000 descriptors)."""
    descriptors = np.concatenate(
        [f.descriptors for f in found]
        + [features_of_image(p).descriptors for p in photos]
        + [np.zeros((0, 128), np.uint8)]
    )
    return Codebook.train(descriptors, words_for(len(descriptors)), seed)


def prepare_local_index(
    encoder: Encoder, store: ProductStore, items: Sequence[CatalogItem], choice: str | None, sample: int = 100
) -> LocalDecision | None:
    """Decide and set up the store's local index; None, doing nothing, when no ``choice`` was given
    and the store has decided already (a resumed build). ``choice``: None (decide once), "auto"
    (measure and decide again), "on" or "off" (forced; measured all the same, for the record)."""
    if choice is None and (store.local.ready or store.get_meta(DECISION_KEY) is not None):
        return None
    decision, sampled = decide(encoder, items, sample, forced=choice if choice in ("on", "off") else None)
    descriptors = sum(f.count for f in sampled)
    if decision.enabled and not store.local.ready and descriptors >= 256:
        store.set_codebook(train_codebook(items, sampled))
    elif decision.enabled and not store.local.ready:
        decision = LocalDecision(**{**asdict(decision), "enabled": False})  # too few keypoints to learn words
    store.set_meta(DECISION_KEY, decision.to_json())
    store.set_rerank_options(replace(store.rerank_options, enabled=decision.enabled))
    return decision
