"""Geometric re-ranking: the global search's top-k checked with local features, within a CPU budget.

Candidates are verified in their global order (RANSAC homography inliers between the shopper's
photo and the candidate's matched photo, ``encoder/geometric.py``) until ``k`` are done or the
query's CPU budget is spent. Those with at least ``min_inliers`` move to the top, most inliers
first; every other result keeps its global place after them. So where local features find no
real match (clothing, fruit) the answer is the global one, and a verified match of a printed
product comes first whatever its cosine.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace

from encoder.geometric import count_inliers
from encoder.local_features import LocalFeatures
from index.records import SearchHit

META_KEY = "rerank"
_LOAD_CHUNK = 8  # candidates whose features are read from the database at a time
PHOTOS_PER_PRODUCT = 4  # a candidate's photos verified at most


@dataclass(frozen=True)
class RerankOptions:
    """Whether and how far to re-rank; kept in the store's meta (``lookalike build --rerank``)."""

    enabled: bool = True
    k: int = 100  # candidates of the global ranking that may be verified
    budget_ms: float = 250.0  # CPU per query for loading and verifying them
    min_inliers: int = 15  # inliers that make a verified match

    def __post_init__(self) -> None:
        if self.k < 1 or self.budget_ms < 0 or self.min_inliers < 4:
            raise ValueError(
                f"rerank options need k >= 1, budget_ms >= 0 and min_inliers >= 4 (a homography has "
                f"four points), not k={self.k}, budget_ms={self.budget_ms}, min_inliers={self.min_inliers}"
            )

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> RerankOptions:
        return cls(**json.loads(text))


@dataclass(frozen=True)
class Reranked:
    hits: list[SearchHit]
    verified: int  # candidates whose inliers were counted
    cpu_ms: float  # CPU this query spent loading and verifying


def _photos(hit: SearchHit) -> list[int]:
    """The image ids to verify a hit by: its matched photo, then the product's others."""
    others = [i.id for i in hit.product.images if i.id != hit.image_id]
    return [hit.image_id, *others][:PHOTOS_PER_PRODUCT]


def rerank(
    hits: Sequence[SearchHit],
    query: LocalFeatures,
    load: Callable[[list[int]], dict[int, LocalFeatures]],
    options: RerankOptions,
    clock: Callable[[], float] = time.thread_time,
) -> Reranked:
    """``hits`` (global order, best first) re-ranked by the inliers of their products' photos.

    Each candidate's matched photo is verified first, then its product's other photos until one
    makes a match (the shopper may have photographed the back of the box); a verified hit then
    names that photo. ``load`` gives the stored features of image ids (photos
    without are skipped); ``clock`` is this thread's CPU seconds, read before each candidate:
    once ``budget_ms`` is spent the rest keep their global order unverified (``inliers`` None).
    """
    started = clock()
    budget_s = options.budget_ms / 1000
    counted: dict[int, tuple[int, int]] = {}  # position in hits -> (inliers, image id)
    candidates = list(range(min(options.k, len(hits)))) if query.count else []
    stored: dict[int, LocalFeatures] = {}
    read: set[int] = set()  # image ids asked of ``load``
    for position in candidates:
        if clock() - started >= budget_s:
            break
        if hits[position].image_id not in read:
            chunk = [
                i for h in hits[position : min(position + _LOAD_CHUNK, len(candidates))] for i in _photos(h)
            ]
            stored.update(load(chunk))
            read.update(chunk)
        for image_id in _photos(hits[position]):
            if (features := stored.get(image_id)) is not None:
                inliers = count_inliers(query, features, enough=options.min_inliers)
                if position not in counted or inliers > counted[position][0]:
                    counted[position] = (inliers, image_id)
                if inliers >= options.min_inliers:
                    break
    marked = [replace(h, inliers=counted[i][0]) if i in counted else h for i, h in enumerate(hits)]
    matched = sorted(
        (i for i, (n, _) in counted.items() if n >= options.min_inliers), key=lambda i: (-counted[i][0], i)
    )
    rest = [i for i in range(len(hits)) if i not in set(matched)]
    ordered = [replace(marked[i], verified=True, image_id=counted[i][1]) for i in matched]
    ordered += [marked[i] for i in rest]
    return Reranked(ordered, len(counted), (clock() - started) * 1000)


def verified_score(inliers: int, best_cosine: float) -> float:
    """The score a verified match answers with: ``1 - 1/inliers`` (0.93 at 15 inliers, 0.99 at
    100), never below the best cosine of the answer, so scores still fall down the list."""
    return max(1.0 - 1.0 / inliers, best_cosine)


def answer_scores(hits: Sequence[SearchHit]) -> list[float]:
    """Each hit's score in the answer: ``verified_score`` for verified ones, else its cosine."""
    best = max((h.score for h in hits), default=-1.0)
    return [verified_score(h.inliers or 0, best) if h.verified else h.score for h in hits]
