"""LocalIndex: the catalog-wide local-feature index as a cache of the database, through its life.

The database holds the truth: the codebook (``local_codebook``) and each photo's compact features
(``image_features``, written in the same transaction as the photo). This class holds the inverted
file built from them and follows the change log the vectors follow: after each commit, and on a
follower's interval for other processes' writes, the photos added since the last applied change
are read and indexed, the removed ones dropped. Writes that add no change-log row (a new
codebook, features found for stored photos by ``lookalike index features``) bump the meta
``local_generation``; a process that sees another generation builds the index again. So a crash
loses nothing acknowledged: start-up builds the inverted file from the committed rows again
(about 1 s per 4,000 photos here). Searches share it under a readers-writer lock and read the
codebook, the kind and the inverted file as one state; catch-up runs under the store's writer lock.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from encoder.local_features import FEATURES_KIND, LocalFeatures
from index.db.base import Transaction
from index.db.repository import Repository
from index.local.codebook import Codebook
from index.local.compact import CompactFeatures
from index.local.inverted_file import InvertedFile
from index.vectors.rwlock import ReadWriteLock

log = logging.getLogger(__name__)
CODEBOOK_KEY = "local_codebook"  # meta: the name of the codebook in use
GENERATION_KEY = "local_generation"  # meta: changes when the local rows change outside the change log
QUERY_ASSIGNMENTS = 3  # a query keypoint counts under its 3 nearest words (chosen on smvs 001-050)


def features_kind(codebook: Codebook) -> str:
    """The kind of the feature rows this codebook reads (``image_features.kind``): the detector's
    and the codebook's names, so a change of either leaves the old rows unused."""
    return f"{FEATURES_KIND}/asmk-{codebook.name}"


@dataclass(frozen=True)
class LocalState:
    """What one search reads, swapped as a whole: the codebook, its feature kind, the inverted file."""

    codebook: Codebook
    ivf: InvertedFile

    @property
    def kind(self) -> str:
        return features_kind(self.codebook)


@dataclass(frozen=True)
class LocalMatches:
    """A query's local candidates, best first."""

    image_ids: np.ndarray  # (L,) int64
    scores: np.ndarray  # (L,) float32 ASMK similarity, 0..1
    codebook: Codebook  # the codebook they were found with: verify with this one


def bump_generation(repo: Repository, tx: Transaction) -> str:
    """Mark, inside ``tx``, that the local rows changed outside the change log; the new generation."""
    generation = uuid.uuid4().hex
    repo.set_meta(GENERATION_KEY, generation, tx)
    return generation


class LocalIndex:
    """The inverted file of one store, kept in step with its repository's change log."""

    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        self.lock = ReadWriteLock()
        self._state: LocalState | None = None
        self.generation: str | None = None
        self.applied_seq = 0
        self.load()

    # ------------------------------------------------------------------ life
    def load(self) -> None:
        """(Re)build from the committed rows: the codebook in use and every photo's features."""
        started = time.perf_counter()
        with self.repo.db.snapshot() as read:
            seq = self.repo.last_seq(read)
        generation = self.repo.get_meta(GENERATION_KEY)
        name = self.repo.get_meta(CODEBOOK_KEY)
        data = self.repo.codebook(name) if name else None
        state = None
        if data:
            codebook = Codebook.from_bytes(data)
            ivf = InvertedFile(codebook.size)
            for rows in self.repo.iter_features(features_kind(codebook)):
                ivf.add([i for i, _ in rows], [CompactFeatures.from_bytes(b).aggregate() for _, b in rows])
            ivf.refresh_norms()
            state = LocalState(codebook, ivf)
        # changes committed while reading: applied again by the next catch-up (adds replace)
        with self.lock.write():
            self._state, self.applied_seq, self.generation = state, seq, generation
        if state is not None:
            log.info(
                "local index: %d photos, %d postings, %d words, built in %.1f s",
                len(state.ivf),
                state.ivf.postings,
                state.codebook.size,
                time.perf_counter() - started,
            )

    def stale(self) -> bool:
        """Whether the local rows changed outside the change log since this index was built."""
        return self.repo.get_meta(GENERATION_KEY) != self.generation

    def catch_up(self) -> int:
        """Under the store's writer lock: index the photos added and drop those removed since the
        last applied change, or build anew after a change outside the log; how many changes."""
        if self.applied_seq < 0 or self.stale():  # an earlier catch-up failed, or another generation
            self.load()
            return 0
        with self.repo.db.snapshot() as read:
            changes = self.repo.changes_after(read, self.applied_seq)
        if not changes:
            return 0
        added: dict[int, None] = {}
        removed: list[int] = []
        for _, op, image_id in changes:
            if op == "add":
                added[image_id] = None
            else:
                added.pop(image_id, None)
                removed.append(image_id)
        self.index_features(list(added), removed)
        self.applied_seq = changes[-1][0]
        return len(changes)

    def index_features(self, added: Sequence[int], removed: Sequence[int] = ()) -> None:
        """Read the stored features of ``added`` image ids into the inverted file; drop ``removed``."""
        state = self._state
        if state is None:
            return
        blobs = self.repo.features(list(added), state.kind) if added else {}
        aggregated = {i: CompactFeatures.from_bytes(b).aggregate() for i, b in blobs.items()}
        with self.lock.write():
            state.ivf.remove(list(removed))
            state.ivf.add(list(aggregated), list(aggregated.values()))
            state.ivf.refresh_norms_if_drifted()

    # ------------------------------------------------------------------ reads
    @property
    def ready(self) -> bool:
        return self._state is not None

    @property
    def codebook(self) -> Codebook | None:
        state = self._state
        return state.codebook if state is not None else None

    @property
    def kind(self) -> str | None:
        state = self._state
        return state.kind if state is not None else None

    def __len__(self) -> int:
        state = self._state
        return len(state.ivf) if state is not None else 0

    def image_ids(self) -> set[int]:
        with self.lock.read():
            state = self._state
            return state.ivf.image_ids() if state is not None else set()

    def search(
        self, query: LocalFeatures, k: int, assignments: int = QUERY_ASSIGNMENTS
    ) -> LocalMatches | None:
        """The ``k`` photos with the most local evidence for ``query``, each of its keypoints
        counted under its ``assignments`` nearest words; None without a codebook."""
        state = self._state  # one codebook, kind and inverted file for the whole search
        if state is None:
            return None
        compact = state.codebook.encode_query(query, assignments)
        words, codes = compact.aggregate()
        with self.lock.read():
            ids, scores = state.ivf.search(words, codes, k)
        return LocalMatches(ids, scores, state.codebook)

    def info(self) -> dict[str, Any]:
        state = self._state
        if state is None:
            return {"codebook": None, "photos": 0}
        return {
            "codebook": state.codebook.name,
            "words": state.codebook.size,
            "photos": len(state.ivf),
            "postings": state.ivf.postings,
            "applied_seq": self.applied_seq,
        }
