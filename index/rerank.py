"""Local matching at search time: a fused shortlist, verified geometrically within a CPU budget.

Two channels name candidates: the global search (cosine of embeddings, ``hits``) and the
catalog-wide local index (visual words, ``index/local``), which finds a photographed printed
product wherever the embedding ranks it. Their products are merged by reciprocal rank, and only
the first ``k`` (16) of the merged list are verified geometrically (``index/local/verify.py``),
each by its locally best photo, then its globally best, then the product's others. Verification
stops early on a decisive match (``decisive_inliers`` and twice the runner-up) or when the query's
CPU budget is spent. Verified products (at least ``min_inliers``) come first, most inliers first;
then the rest in the merged order (so where nothing verifies, the local index's ranking still
counts). A candidate only the local index named that failed verification is dropped. A store
whose options are off pays nothing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields, replace

from encoder.local_features import LocalFeatures
from index.local.cache import LocalIndex
from index.local.compact import CompactFeatures
from index.local.verify import QueryForVerification
from index.records import SearchHit

META_KEY = "rerank"
PHOTOS_PER_PRODUCT = 3  # a candidate's photos verified at most
FUSION_K = 60  # reciprocal rank fusion's constant (Cormack et al. 2009)


@dataclass(frozen=True)
class RerankOptions:
    """Whether and how far to match locally; kept in the store's meta (``lookalike build``
    decides ``enabled`` from the store's own photos, ``lookalike index rerank`` overrides)."""

    enabled: bool = True
    k: int = 16  # candidates of the fused shortlist that may be verified
    budget_ms: float = 60.0  # CPU per query for the local search and verification
    min_inliers: int = 15  # inliers that make a verified match
    shortlist: int = 20  # candidates the local index names
    decisive_inliers: int = 40  # a match this strong (and twice the runner-up) ends verification

    def __post_init__(self) -> None:
        if self.k < 1 or self.shortlist < 0 or self.budget_ms < 0 or self.min_inliers < 4:
            raise ValueError(
                f"rerank options need k >= 1, shortlist >= 0, budget_ms >= 0 and min_inliers >= 4 (a "
                f"homography has four points), not k={self.k}, shortlist={self.shortlist}, "
                f"budget_ms={self.budget_ms}, min_inliers={self.min_inliers}"
            )
        if self.decisive_inliers < self.min_inliers:
            raise ValueError(
                f"decisive_inliers ({self.decisive_inliers}) is below min_inliers ({self.min_inliers})"
            )

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> RerankOptions:
        """Options as stored; those of a store from before the local index (no ``shortlist``:
        k = 100 global results verified) keep their switch and minimum, the rest are today's."""
        stored = json.loads(text)
        if "shortlist" not in stored:
            stored = {key: stored[key] for key in ("enabled", "min_inliers") if key in stored}
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in stored.items() if key in known})


@dataclass(frozen=True)
class Reranked:
    hits: list[SearchHit]
    verified: int  # candidates whose inliers were counted
    cpu_ms: float  # CPU this query spent on the local search and verification
    local: int = 0  # candidates the local index named


def fuse(rankings: Sequence[Sequence[int]], k: int = FUSION_K) -> list[int]:
    """Ids by reciprocal rank fusion (sum of 1 / (k + rank)), best first; ties by first seen."""
    score: dict[int, float] = {}
    for ranking in rankings:
        for rank, key in enumerate(ranking):
            score[key] = score.get(key, 0.0) + 1.0 / (k + rank + 1)
    return sorted(score, key=lambda key: -score[key])


def rerank(
    hits: Sequence[SearchHit],
    query: LocalFeatures,
    local: LocalIndex,
    load: Callable[[list[int]], dict[int, CompactFeatures]],
    hits_of: Callable[[list[int]], list[SearchHit]],
    options: RerankOptions,
    clock: Callable[[], float] = time.thread_time,
) -> Reranked:
    """``hits`` (global order, best first) with the locally verified products first.

    ``local``: the store's local index; ``load``: stored compact features of image ids;
    ``hits_of``: a hit (with its cosine) for each image id whose product may be answered (the
    search's filter applies), for candidates only the local index named. ``clock``: this thread's
    CPU seconds, read before each candidate."""
    started = clock()
    matches = local.search(query, options.shortlist) if query.count else None
    if matches is None:
        return Reranked(list(hits), 0, (clock() - started) * 1000)
    codebook = matches.codebook
    by_product = {h.product.id: h for h in hits}
    global_products = set(by_product)
    local_image: dict[int, int] = {}  # product id -> its locally best photo
    new = [int(i) for i in matches.image_ids]
    answered = {h.image_id for h in hits}
    for hit in hits_of([i for i in new if i not in answered]):
        by_product.setdefault(hit.product.id, hit)
    owner = {i.id: h.product.id for h in by_product.values() for i in h.product.images}  # photo -> product
    local_ranking: list[int] = []
    for image_id in new:
        product_id = owner.get(image_id)
        if product_id is not None and product_id not in local_image:
            local_image[product_id] = image_id
            local_ranking.append(product_id)
    fused = fuse([[h.product.id for h in hits], local_ranking])
    verifier = QueryForVerification(query)
    counted: dict[int, tuple[int, int]] = {}  # product id -> (inliers, image id)
    for product_id in fused[: options.k]:
        if clock() - started >= options.budget_ms / 1000:
            break
        hit = by_product[product_id]
        photos = list(dict.fromkeys([local_image.get(product_id, hit.image_id), hit.image_id]))
        photos += [i.id for i in hit.product.images if i.id not in photos]
        stored = load(photos[:PHOTOS_PER_PRODUCT])
        for image_id in photos[:PHOTOS_PER_PRODUCT]:
            if (features := stored.get(image_id)) is None:
                continue
            inliers = verifier.inliers(features, codebook, options.min_inliers)
            if product_id not in counted or inliers > counted[product_id][0]:
                counted[product_id] = (inliers, image_id)
            if inliers >= options.min_inliers:
                break
        best = sorted((n for n, _ in counted.values()), reverse=True) + [0]
        if best[0] >= options.decisive_inliers and best[0] >= 2 * best[1]:
            break
    matched = sorted(
        (p for p, (n, _) in counted.items() if n >= options.min_inliers), key=lambda p: -counted[p][0]
    )
    left_out = set(matched) | {p for p in counted if p not in global_products}  # failed local-only ones
    # a verified product answers with the photo that verified, and that photo's cosine
    other_photo = [counted[p][1] for p in matched if counted[p][1] != by_product[p].image_id]
    cosine = {h.image_id: h.score for h in hits_of(other_photo)} if other_photo else {}
    answer = [
        replace(
            by_product[p],
            verified=True,
            inliers=counted[p][0],
            image_id=counted[p][1],
            score=cosine.get(counted[p][1], by_product[p].score),
        )
        for p in matched
    ]
    answer += [
        replace(by_product[p], inliers=counted[p][0]) if p in counted else by_product[p]
        for p in fused
        if p not in left_out
    ]
    return Reranked(answer, len(counted), (clock() - started) * 1000, len(new))


def match_confidence(inliers: int | None) -> float | None:
    """A verified match's confidence, ``1 - 1/inliers`` (0.93 at 15 inliers, 0.99 at 100)."""
    return None if not inliers else 1.0 - 1.0 / inliers
