"""InvertedFile: visual word -> the photos that hold it, with their aggregated binary codes.

As ASMK's ``inverted_file.py``: one posting (photo, 128-bit code) per photo and word it holds.
Postings live in two segments sorted by word, a large one and a small one that takes the adds
(re-sorted per batch, merged into the large one when it passes an eighth of it), so an add costs
the size of the small segment, not the catalog. A removed photo's row is marked dead at once and
its postings go at the next merge. Not thread-safe: ``LocalIndex`` holds a readers-writer
lock, and writers refresh the norms (``refresh_norms_if_drifted``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from index.local.kernel import hamming, selective_similarity

_MIN_MERGE = 50_000  # postings the small segment may hold whatever the large one's size


@dataclass
class _Segment:
    """Postings sorted by word: ``starts[w]:starts[w + 1]`` are word w's."""

    rows: np.ndarray  # (P,) int64 photo rows
    codes: np.ndarray  # (P, 2) uint64
    starts: np.ndarray  # (K + 1,) int64

    @classmethod
    def empty(cls, words: int) -> _Segment:
        return cls(np.zeros(0, np.int64), np.zeros((0, 2), np.uint64), np.zeros(words + 1, np.int64))

    @classmethod
    def of(cls, words: int, word: np.ndarray, rows: np.ndarray, codes: np.ndarray) -> _Segment:
        order = np.argsort(word, kind="stable")
        starts = np.searchsorted(word[order], np.arange(words + 1))
        return cls(rows[order], codes[order], starts.astype(np.int64))

    def postings(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(word, row, code) of every posting."""
        word = np.repeat(np.arange(len(self.starts) - 1), np.diff(self.starts))
        return word, self.rows, self.codes

    def gather(self, words: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(P',) indices of the postings of ``words`` (U,) and (P',) which query word each is of."""
        first, last = self.starts[words], self.starts[words + 1]
        lengths = last - first
        total = int(lengths.sum())
        if total == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        owner = np.repeat(np.arange(len(words)), lengths)
        offsets = np.cumsum(lengths) - lengths  # where each word's run starts in the output
        return first[owner] + np.arange(total) - offsets[owner], owner


class InvertedFile:
    """Photos by visual word, scored against a query with the ASMK* kernel (``kernel.py``)."""

    def __init__(self, words: int) -> None:
        self.words = words
        self._large = _Segment.empty(words)
        self._small = _Segment.empty(words)
        self._ids: list[int] = []  # row -> image id
        self._row_of: dict[int, int] = {}
        self._row_words: list[np.ndarray] = []  # row -> its unique words (for df and norms)
        self._live = np.zeros(0, bool)
        self._norms = np.zeros(0, np.float32)
        self._norms_for = 0  # photos when every norm was last computed with the idf of the day
        self.df = np.zeros(words, np.int64)  # live photos per word

    def __len__(self) -> int:
        return len(self._row_of)

    def __contains__(self, image_id: int) -> bool:
        return image_id in self._row_of

    def image_ids(self) -> set[int]:
        return set(self._row_of)

    @property
    def postings(self) -> int:
        return len(self._large.rows) + len(self._small.rows)

    def idf(self) -> np.ndarray:
        """(K,) float32 log(photos / photos with the word); 0 for unused words."""
        return np.log(max(len(self), 1) / np.maximum(self.df, 1)).astype(np.float32) * (self.df > 0)

    def add(self, image_ids: Sequence[int], aggregated: Sequence[tuple[np.ndarray, np.ndarray]]) -> None:
        """Add photos (an id already held is replaced, an id given twice counts once: the last):
        each with (U,) words and (U, 2) codes. A photo with words outside the codebook is refused
        before anything changes."""
        batch = dict(zip((int(i) for i in image_ids), aggregated, strict=True))
        for image_id, (words, _) in batch.items():
            if len(words) and (words.min() < 0 or words.max() >= self.words):
                raise ValueError(f"image {image_id} has words outside 0..{self.words - 1}")
        self.remove([i for i in batch if i in self._row_of])
        word_parts, row_parts, code_parts = [], [], []
        for image_id, (words, codes) in batch.items():
            row = len(self._ids)
            self._ids.append(int(image_id))
            self._row_of[int(image_id)] = row
            self._row_words.append(words.astype(np.int32))
            self.df[words] += 1
            word_parts.append(words)
            row_parts.append(np.full(len(words), row, np.int64))
            code_parts.append(codes)
        if not word_parts:
            return
        self._live = np.concatenate([self._live, np.ones(len(word_parts), bool)])
        self._norms = np.concatenate([self._norms, np.zeros(len(word_parts), np.float32)])
        old = self._small.postings()
        self._small = _Segment.of(
            self.words,
            np.concatenate([old[0], *word_parts]),
            np.concatenate([old[1], *row_parts]),
            np.concatenate([old[2], *code_parts]),
        )
        if len(self._small.rows) > max(_MIN_MERGE, len(self._large.rows) // 8):
            self._merge()
        else:
            idf2 = self.idf() ** 2
            for row in range(len(self._ids) - len(word_parts), len(self._ids)):
                self._norms[row] = np.sqrt(idf2[self._row_words[row]].sum())

    def remove(self, image_ids: Sequence[int]) -> None:
        """Drop photos (ids not held are ignored); their postings go at the next merge."""
        for image_id in image_ids:
            row = self._row_of.pop(int(image_id), None)
            if row is not None:
                self._live[row] = False
                self.df[self._row_words[row]] -= 1
        dead = len(self._ids) - len(self._row_of)
        if dead > max(1000, len(self._ids) // 4):
            self._merge()

    def _merge(self) -> None:
        """One segment of the live postings, rows renumbered, every norm with today's idf."""
        parts = [self._large.postings(), self._small.postings()]
        word = np.concatenate([p[0] for p in parts])
        rows = np.concatenate([p[1] for p in parts])
        codes = np.concatenate([p[2] for p in parts])
        keep = self._live[rows]
        renumber = np.cumsum(self._live) - 1  # old row -> new row
        self._large = _Segment.of(self.words, word[keep], renumber[rows[keep]], codes[keep])
        self._small = _Segment.empty(self.words)
        alive = np.flatnonzero(self._live)
        self._ids = [self._ids[r] for r in alive]
        self._row_words = [self._row_words[r] for r in alive]
        self._row_of = {image_id: row for row, image_id in enumerate(self._ids)}
        self._live = np.ones(len(self._ids), bool)
        self.refresh_norms()

    def refresh_norms_if_drifted(self) -> None:
        """``refresh_norms`` once the photo count has moved by more than 1 % since the last one."""
        if abs(len(self) - self._norms_for) > 0.01 * max(self._norms_for, 1):
            self.refresh_norms()

    def refresh_norms(self) -> None:
        """Every photo's norm, sqrt(sum of idf^2 over its words), with today's idf. A photo added
        later gets its norm with the idf of its day; once the photo count has moved by more than
        1 % since, the writer computes them all again, so scores drift by that much at most."""
        idf2 = self.idf() ** 2
        lengths = np.array([len(w) for w in self._row_words], np.int64)
        flat = np.concatenate([np.zeros(0, np.int32), *self._row_words])
        rows = np.repeat(np.arange(len(lengths)), lengths)
        sums = np.bincount(rows, weights=idf2[flat], minlength=len(lengths))
        self._norms = np.sqrt(sums).astype(np.float32)
        self._norms_for = len(self)

    def search(self, words: np.ndarray, codes: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """A query's (U,) sorted unique words and (U, 2) codes -> (image ids, scores), each (<= k,),
        best first; only photos sharing a word with a positive kernel value."""
        if len(self._ids) == 0 or len(words) == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        idf2 = self.idf() ** 2
        query_norm = float(np.sqrt(idf2[words].sum()))
        if query_norm == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        scores = np.zeros(len(self._ids), np.float64)
        for segment in (self._large, self._small):
            found, owner = segment.gather(words)
            if len(found):
                weight = idf2[words[owner]] * selective_similarity(
                    hamming(segment.codes[found], codes[owner])
                )
                scores += np.bincount(segment.rows[found], weights=weight, minlength=len(scores))
        scores *= self._live
        scores /= np.maximum(self._norms, 1e-12) * query_norm
        top = np.flatnonzero(scores > 0)
        top = top[np.argsort(-scores[top], kind="stable")[:k]]
        return np.array([self._ids[r] for r in top], np.int64), scores[top].astype(np.float32)
