"""Trainer throughput vs the raw forward + backward of the same model and batch, in one run.

    .venv/bin/python bench/train_throughput.py --data ../shared/data/clothing-small/train

The raw loop feeds random tensors already in memory, so it is the ceiling; the trainer decodes
and augments real JPEGs with DataLoader workers. Ratio >= 0.9 means the data pipeline does not
starve the model.
"""

from __future__ import annotations

import argparse
import os

import torch
from torch.utils.data import DataLoader

from training.augment import AugmentConfig, TwoViews, view_transform
from training.data import ImageListDataset
from training.engine import StepSettings, train_one_epoch
from training.freeze import freeze_blocks
from training.init import build_encoder
from training.optim import build_optimizer, param_groups
from training.simclr import SimCLR


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default="../shared/data/clothing-small/train")
    parser.add_argument("--arch", default="efficientnet_lite0")
    parser.add_argument("--init", default="imagenet")
    parser.add_argument("--freeze-blocks", type=int, default=12)
    parser.add_argument("--image-size", type=int, default=160)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=8, help="measured steps per loop")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2], help="loader workers to compare")
    args = parser.parse_args()

    torch.manual_seed(0)
    encoder = build_encoder(args.arch, args.init, args.image_size)
    freeze_blocks(encoder, args.freeze_blocks)
    model = SimCLR(encoder)
    optimizer = build_optimizer("adamw", param_groups(model, 1e-4, 1e-4), 1e-4)
    settings = StepSettings(total_steps=10**6, warmup_steps=1, bn_eval=True, progress=False)
    n, size = args.batch_size, args.image_size

    def raw(steps: int) -> float:
        views = torch.randn(n, 3, size, size), torch.randn(n, 3, size, size)
        loader = [(views, torch.zeros(n))] * steps
        stats, _ = train_one_epoch(model, loader, optimizer, None, torch.device("cpu"), 0, 0, settings)
        return stats["images_per_s"]

    augment = AugmentConfig(image_size=size)
    dataset = ImageListDataset(
        args.data,
        TwoViews(view_transform(augment, encoder.config.mean, encoder.config.std)),
        limit=n * args.steps,
    )

    def trainer(workers: int) -> float:
        loader = DataLoader(dataset, batch_size=n, shuffle=True, drop_last=True, num_workers=workers)
        stats, _ = train_one_epoch(model, loader, optimizer, None, torch.device("cpu"), 0, 0, settings)
        return stats["images_per_s"]

    raw(2)  # warm-up
    print(
        f"{args.arch} ({args.init}, {args.freeze_blocks} blocks frozen), {size} px, batch {n} (x2 views), "
        f"{args.steps} steps per loop, {os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads"
    )
    print("| loader workers | raw images/s (before, after) | trainer images/s | ratio |\n|---|---|---|---|")
    for workers in args.workers:
        before = raw(args.steps)
        got = trainer(workers)
        after = raw(args.steps)
        ceiling = (before + after) / 2  # the machine is shared: bracket the trainer with two raw runs
        print(
            f"| {workers} | {ceiling:.1f} ({before:.1f}, {after:.1f}) | {got:.1f} | {got / ceiling:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
