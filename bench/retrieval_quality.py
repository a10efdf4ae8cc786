"""Retrieval quality of encoders on clothing-small: test/ photos as queries against a gallery.

    .venv/bin/python bench/retrieval_quality.py --encoder demo/encoder.pt \
        --queries ../shared/data/clothing-small/test --gallery demo/catalog.csv

Prints one row per encoder: the given encoder.pt files, the off-the-shelf ImageNet
EfficientNet-Lite0 (with its own 0.5/0.5 normalisation, and with ImageNet's mean/std to show
why the normalisation matters) and a randomly initialised one. A hit = same category.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from encoder import Encoder, EncoderConfig, load_encoder, load_imagenet_weights
from encoder.transforms import IMAGENET_MEAN, IMAGENET_STD
from training.evaluate import embed_labeled, resolve_encoder
from training.metrics import retrieval_report


def baselines(image_size: int) -> dict[str, Encoder]:
    random_init = resolve_encoder("random", "efficientnet_lite0", image_size, seed=0)
    pretrained = resolve_encoder("imagenet", "efficientnet_lite0", image_size, seed=0)
    wrong_norm = Encoder(
        EncoderConfig(arch="efficientnet_lite0", image_size=image_size, mean=IMAGENET_MEAN, std=IMAGENET_STD)
    )
    load_imagenet_weights("efficientnet_lite0", wrong_norm.backbone)
    return {
        "efficientnet_lite0 ImageNet (mean/std 0.5)": pretrained,
        "efficientnet_lite0 ImageNet, ImageNet mean/std (wrong)": wrong_norm,
        "efficientnet_lite0 random init": random_init,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--encoder", action="append", default=[], help="encoder.pt (repeatable)")
    parser.add_argument("--queries", default="../shared/data/clothing-small/test")
    parser.add_argument("--gallery", default="demo/catalog.csv")
    parser.add_argument("--image-size", type=int, default=224, help="of the baselines")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()

    encoders = {path: load_encoder(path) for path in args.encoder} | baselines(args.image_size)
    print(
        f"queries {args.queries}, gallery {args.gallery}, hit = same category, "
        f"{torch.get_num_threads()} threads"
    )
    print("| encoder | recall@1 | recall@5 | recall@10 | mAP@10 | seconds |\n|---|---|---|---|---|---|")
    for name, encoder in encoders.items():
        started = time.perf_counter()
        q, q_labels = embed_labeled(encoder.eval(), args.queries, "category", 32, args.workers)
        g, g_labels = embed_labeled(encoder, args.gallery, "category", 32, args.workers)
        r = retrieval_report(q, np.array(q_labels), g, np.array(g_labels))
        seconds = time.perf_counter() - started
        print(
            f"| {name} | {r['recall@1']:.3f} | {r['recall@5']:.3f} | {r['recall@10']:.3f} | "
            f"{r['map@10']:.3f} | {seconds:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
