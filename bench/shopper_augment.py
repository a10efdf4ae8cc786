"""Milliseconds per image of each shopper-photo augmentation (applied with p=1), one thread.

    .venv/bin/python bench/shopper_augment.py --photos demo/catalog --size 500

Each augmentation runs on ``--repeat`` photos from ``--photos`` resized to SIZE x SIZE; the
background replacement runs on those photos pasted onto a white canvas (a packshot), its
backgrounds drawn from the same folder, and once more on the plain photos (the border test
alone). Prints the median per call; the figures in the docstrings of ``training/shopper.py``
and ``training/background.py`` come from it.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import cv2
import torch
from PIL import Image

from encoder import list_image_files
from training.background import BackgroundReplacement, RandomPhotoCrop
from training.shopper import (
    ExposureShift,
    Glare,
    HandOcclusion,
    JpegRecompression,
    MotionBlur,
    RandomPerspectiveWarp,
    SmallRotation,
    WhiteBalanceShift,
)


def packshot(photo: Image.Image, size: int) -> Image.Image:
    canvas = Image.new("RGB", (size, size), (255, 255, 255))
    photo = photo.resize((size * 3 // 5, size * 3 // 5))
    canvas.paste(photo, (size // 5, size // 5))
    return canvas


def median_ms(transform: Callable[[Image.Image], Image.Image], images: list[Image.Image]) -> float:
    times = []
    for image in images:
        started = time.perf_counter()
        transform(image)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--photos", default="demo/catalog")
    parser.add_argument("--size", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    torch.manual_seed(0)
    paths = list_image_files(args.photos)
    photos = [Image.open(p).convert("RGB") for p in paths[: args.repeat]]
    plain = [p.resize((args.size, args.size)) for p in photos]
    packshots = [packshot(p, args.size) for p in photos]
    augmentations: dict[str, Callable[[Image.Image], Image.Image]] = {
        "perspective": RandomPerspectiveWarp(p=1),
        "rotation": SmallRotation(p=1),
        "occlusion": HandOcclusion(p=1),
        "glare": Glare(p=1),
        "white balance": WhiteBalanceShift(p=1),
        "exposure": ExposureShift(p=1),
        "motion blur": MotionBlur(p=1),
        "jpeg": JpegRecompression(p=1),
    }
    print(f"ms per {args.size}x{args.size} image, median of {len(photos)}, one thread")
    for name, transform in augmentations.items():
        print(f"{name:>34}: {median_ms(transform, plain):6.2f}")
    background = BackgroundReplacement(RandomPhotoCrop(paths), p=1)
    print(f"{'background (packshot, replaced)':>34}: {median_ms(background, packshots):6.2f}")
    print(f"{'background (no plain border)':>34}: {median_ms(background, plain):6.2f}")


if __name__ == "__main__":
    main()
