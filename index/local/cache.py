"""LocalIndex: the catalog-wide local-feature index as a cache of the database, through its life.

The database holds the truth: the codebook (``local_codebook``) and each photo's compact features
(``image_features``, written in the same transaction as the photo). This class holds the inverted
file built from them and follows the change log the vectors follow: after each commit, and on a
follower's interval for other processes' writes, the photos added since the last applied change
are read and indexed, the removed ones dropped. So a crash loses nothing acknowledged: start-up
builds the inverted file from the committed rows again (about 1 s per 10,000 photos here).
Searches share it under a readers-writer lock; catch-up runs under the store's writer lock.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from encoder.local_features import FEATURES_KIND, LocalFeatures
from index.db.repository import Repository
from index.local.codebook import Codebook
from index.local.compact import CompactFeatures
from index.local.inverted_file import InvertedFile
from index.vectors.rwlock import ReadWriteLock

log = logging.getLogger(__name__)
CODEBOOK_KEY = "local_codebook"  # meta: the name of the codebook in use


def features_kind(codebook: Codebook) -> str:
    """The kind of the feature rows this codebook reads (``image_features.kind``): the detector's
    and the codebook's names, so a change of either leaves the old rows unused."""
    return f"{FEATURES_KIND}/asmk-{codebook.name}"


@dataclass(frozen=True)
class LocalMatches:
    """A query's local candidates, best first."""

    image_ids: np.ndarray  # (L,) int64
    scores: np.ndarray  # (L,) float32 ASMK similarity, 0..1
    query: CompactFeatures  # the query's own compact features, for verification


class LocalIndex:
    """The inverted file of one store, kept in step with its repository's change log."""

    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        self.lock = ReadWriteLock()
        self.codebook: Codebook | None = None
        self.kind: str | None = None
        self._ivf: InvertedFile | None = None
        self.applied_seq = 0
        self.load()

    # ------------------------------------------------------------------ life
    def load(self) -> None:
        """(Re)build from the committed rows: the codebook in use and every photo's features."""
        started = time.perf_counter()
        with self.repo.db.snapshot() as read:
            seq = self.repo.last_seq(read)
        name = self.repo.get_meta(CODEBOOK_KEY)
        data = self.repo.codebook(name) if name else None
        codebook = Codebook.from_bytes(data) if data else None
        ivf = InvertedFile(codebook.size) if codebook else None
        if codebook is not None and ivf is not None:
            for rows in self.repo.iter_features(features_kind(codebook)):
                ivf.add([i for i, _ in rows], [CompactFeatures.from_bytes(b).aggregate() for _, b in rows])
        # changes committed while reading: applied again by the next catch-up (adds replace)
        with self.lock.write():
            self.codebook, self._ivf, self.applied_seq = codebook, ivf, seq
            self.kind = features_kind(codebook) if codebook else None
        if codebook is not None and ivf is not None:
            log.info(
                "local index: %d photos, %d postings, %d words, built in %.1f s",
                len(ivf),
                ivf.postings,
                codebook.size,
                time.perf_counter() - started,
            )

    def catch_up(self) -> int:
        """Under the store's writer lock: index the photos added and drop those removed since the
        last applied change; how many changes. Cheap when the store has no codebook."""
        if self.applied_seq < 0:  # an earlier catch-up failed midway
            self.load()
            return 0
        with self.repo.db.snapshot() as read:
            changes = self.repo.changes_after(read, self.applied_seq)
        if not changes:
            return 0
        if self.repo.get_meta(CODEBOOK_KEY) != (self.codebook.name if self.codebook else None):
            self.load()  # another process trained or dropped the codebook
            return len(changes)
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
        if self._ivf is None or self.kind is None:
            return
        blobs = self.repo.features(list(added), self.kind) if added else {}
        aggregated = {i: CompactFeatures.from_bytes(b).aggregate() for i, b in blobs.items()}
        with self.lock.write():
            self._ivf.remove(list(removed))
            self._ivf.add(list(aggregated), list(aggregated.values()))

    # ------------------------------------------------------------------ reads
    @property
    def ready(self) -> bool:
        return self._ivf is not None

    def __len__(self) -> int:
        return len(self._ivf) if self._ivf is not None else 0

    def image_ids(self) -> set[int]:
        with self.lock.read():
            return self._ivf.image_ids() if self._ivf is not None else set()

    def encode(self, features: LocalFeatures) -> CompactFeatures | None:
        return self.codebook.encode(features) if self.codebook is not None else None

    def search(self, query: LocalFeatures, k: int) -> LocalMatches | None:
        """The ``k`` photos with the most local evidence for ``query``; None without a codebook."""
        codebook = self.codebook
        if codebook is None or self._ivf is None:
            return None
        compact = codebook.encode(query, with_codes=False)
        words, codes = compact.aggregate()
        with self.lock.read():
            ids, scores = self._ivf.search(words, codes, k)
        return LocalMatches(ids, scores, compact)

    def info(self) -> dict[str, Any]:
        if self.codebook is None or self._ivf is None:
            return {"codebook": None, "photos": 0}
        return {
            "codebook": self.codebook.name,
            "words": self.codebook.size,
            "photos": len(self._ivf),
            "postings": self._ivf.postings,
            "applied_seq": self.applied_seq,
        }
