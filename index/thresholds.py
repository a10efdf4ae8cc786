"""When is a result a real match? The calibrated thresholds, as the server reads them at run time.

``ops.calibrate`` measures two score distributions on the shop's own photos (a photo vs. altered
copies of itself; a photo vs. the nearest photo of another product) and keeps the thresholds it
derives in the store's meta under ``META_KEY``; the server only loads them and labels each score
``strong``, ``weak`` or ``none``. No torch here: the measuring half lives with the offline jobs.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Literal, Protocol

Match = Literal["strong", "weak", "none"]
META_KEY = "match_calibration"


class _Meta(Protocol):
    def get_meta(self, key: str) -> str | None: ...

    def set_meta(self, key: str, value: str) -> None: ...


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


def save(store: _Meta, thresholds: MatchThresholds) -> None:
    store.set_meta(META_KEY, json.dumps(asdict(thresholds)))


def load(store: _Meta) -> MatchThresholds | None:
    raw = store.get_meta(META_KEY)
    return MatchThresholds(**json.loads(raw)) if raw else None
