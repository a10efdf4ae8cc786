from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import make_image
from training.colour_hist import ColourHistogramEmbedder, colour_histogram
from training.evaluate import get_args_parser, main


def tinted(rgb_low: tuple[int, int, int], rgb_high: tuple[int, int, int], seed: int) -> Image.Image:
    """A noisy 64x48 image with every pixel's channels drawn between ``rgb_low`` and ``rgb_high``."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(rgb_low, np.add(rgb_high, 1), size=(48, 64, 3))
    return Image.fromarray(pixels.astype(np.uint8))


def test_length_dtype_and_unit_norm() -> None:
    h = colour_histogram(make_image(0))
    assert h.shape == (8 * 4 * 4,) and h.dtype == np.float32
    assert np.linalg.norm(h) == pytest.approx(1.0, abs=1e-6)
    assert (h >= 0).all()
    h = colour_histogram(make_image(1, (300, 40)), bins=(6, 3, 2), size=32)
    assert h.shape == (36,)
    assert np.linalg.norm(h) == pytest.approx(1.0, abs=1e-6)


def test_identical_images_give_inner_product_one() -> None:
    a, b = colour_histogram(make_image(5)), colour_histogram(make_image(5))
    assert float(a @ b) == pytest.approx(1.0, abs=1e-6)
    # resolution hardly matters: the image is resized to the same longer side first
    big = colour_histogram(make_image(5).resize((192, 256), Image.Resampling.NEAREST))
    assert float(a @ big) > 0.95


def test_red_is_closer_to_red_than_to_blue() -> None:
    red = colour_histogram(tinted((170, 20, 10), (255, 60, 20), seed=0))  # hue just above 0
    other_red = colour_histogram(tinted((140, 30, 10), (230, 70, 25), seed=1))
    blue = colour_histogram(tinted((10, 20, 150), (40, 60, 255), seed=2))
    assert float(red @ other_red) > float(red @ blue)
    assert float(red @ other_red) > 0.5


def test_other_modes_are_accepted() -> None:
    rgb = make_image(3)
    expected = colour_histogram(rgb)
    rgba = rgb.convert("RGBA")
    assert np.allclose(colour_histogram(rgba), expected)
    grey = colour_histogram(rgb.convert("L"))
    assert np.linalg.norm(grey) == pytest.approx(1.0, abs=1e-6)


def test_bad_bins_are_rejected() -> None:
    with pytest.raises(ValueError):
        colour_histogram(make_image(0), bins=(0, 4, 4))
    with pytest.raises(ValueError):
        colour_histogram(make_image(0), bins=(512, 4, 4))


def test_embedder_over_a_folder(photo_folder: Path) -> None:
    embeddings, labels = ColourHistogramEmbedder().embed_source(str(photo_folder), "category")
    assert embeddings.shape == (12, 128) and embeddings.dtype == np.float32
    assert sorted(set(labels)) == ["blue", "green", "red"] and len(labels) == 12
    assert np.allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-6)


def eval_args(photo_folder: Path, *extra: str) -> list[str]:
    return ["--queries", str(photo_folder), "--gallery", str(photo_folder), "--workers", "0", *extra]


def test_evaluate_with_baselines(photo_folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = eval_args(
        photo_folder,
        *("--baseline", "colour-hist", "--baseline", "random"),
        *("--arch", "mobilenet_v3_small", "--image-size", "64", "--batch-size", "6", "--device", "cpu"),
        "--json",
    )
    reports = main(get_args_parser().parse_args(argv))
    assert list(reports) == ["baseline:colour-hist", "baseline:random"]
    for report in reports.values():
        assert 0.0 <= report["recall@1"] <= 1.0
        assert set(report) == {"recall@1", "recall@5", "recall@10", "map@10"}
    assert reports["baseline:colour-hist"]["recall@1"] == 1.0  # each query finds itself first
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [line["encoder"] for line in lines] == ["baseline:colour-hist", "baseline:random"]
    assert all(line["queries"] == line["gallery"] == 12 for line in lines)


def test_evaluate_encoder_next_to_a_baseline(
    photo_folder: Path, tiny_encoder_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = eval_args(photo_folder, "--encoder", str(tiny_encoder_path), "--baseline", "colour-hist")
    reports = main(get_args_parser().parse_args([*argv, "--device", "cpu"]))
    assert list(reports) == [str(tiny_encoder_path), "baseline:colour-hist"]
    out = capsys.readouterr().out
    assert f"{tiny_encoder_path}: 12 queries vs 12 gallery images" in out
    assert "baseline:colour-hist: 12 queries vs 12 gallery images" in out


def test_evaluate_needs_an_encoder_or_a_baseline(photo_folder: Path) -> None:
    with pytest.raises(SystemExit):
        main(get_args_parser().parse_args(eval_args(photo_folder)))
    with pytest.raises(SystemExit):
        get_args_parser().parse_args(eval_args(photo_folder, "--baseline", "sift"))
