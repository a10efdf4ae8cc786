"""Match thresholds calibrated on the catalog: derivation, persistence, and on a real store."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from encoder import load_encoder
from index import ProductStore
from index.thresholds import META_KEY, load
from ops.calibrate import calibrate, derive, recalibrate_other
from tests.ops.test_build import build


def test_thresholds_sit_between_the_two_distributions() -> None:
    rng = np.random.default_rng(0)
    same = rng.normal(0.9, 0.03, 600).clip(-1, 1)
    other = rng.normal(0.6, 0.08, 2000).clip(-1, 1)
    t = derive(same, other)
    assert t.strong == pytest.approx(max(np.percentile(same, 5), np.percentile(other, 99)), abs=2e-3)
    assert t.weak == pytest.approx(np.percentile(other, 50), abs=1e-3)
    assert (t.label(0.95), t.label(0.7), t.label(0.3)) == ("strong", "weak", "none")
    overlapping = derive(np.array([0.5, 0.6]), np.array([0.7, 0.99, 0.999]))
    assert overlapping.weak < overlapping.strong <= 1.0
    with pytest.raises(ValueError):
        derive(np.array([]), other)


def test_calibrate_a_real_store_keep_it_and_refresh_it_on_rebuild(
    photo_folder: Path, tiny_encoder_path: Path, tmp_path: Path
) -> None:
    store = build(photo_folder, tiny_encoder_path, tmp_path / "s")
    assert load(store) is not None  # `lookalike build` calibrates; start again from none
    store.repository.delete_meta(META_KEY)
    assert load(store) is None and recalibrate_other(store) is None
    t = calibrate(load_encoder(tiny_encoder_path), store, sample=6)
    assert t.images == 12 and -1 <= t.weak < t.strong <= 1
    store.close()
    with ProductStore(tmp_path / "s") as reopened:
        assert load(reopened) == t
        reopened.rebuild("HNSW32")
        again = recalibrate_other(reopened)
        assert (
            again is not None
            and again.same_p5 == t.same_p5
            and again.other_p50 == pytest.approx(t.other_p50, abs=1e-3)
        )
