"""Self-supervised training of the image encoder (SimCLR) on unlabeled catalog photos.

    lookalike train --data PHOTOS_DIR --arch efficientnet_lite0 --init imagenet \
        --image-size 160 --epochs 1 --batch-size 64 --out encoder.pt

Only the backbone is exported: ``encoder.pt`` is what ``lookalike build`` and the server load.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from encoder import Encoder, EncoderConfig, load_imagenet_weights, pick_device, save_encoder
from encoder.backbones import BACKBONES
from training.augment import AugmentConfig, TwoViews, view_transform
from training.data import ImageListDataset
from training.freeze import freeze_blocks, set_batchnorm_eval
from training.loss import NTXentLoss
from training.optim import param_groups, set_lr, warmup_cosine
from training.simclr import SimCLR


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Train the image encoder self-supervised (SimCLR) on unlabeled photos.",
        add_help=add_help,
    )
    parser.add_argument("--data", required=True, help="folder of photos (recursive) or CSV with image_path")
    parser.add_argument("--out", default="encoder.pt", help="where to write the exported encoder")
    parser.add_argument("--method", default="simclr", choices=["simclr"])
    parser.add_argument("--arch", default="efficientnet_lite0", choices=sorted(BACKBONES))
    parser.add_argument(
        "--init",
        default="random",
        help="'random', 'imagenet' (shipped weights, efficientnet_lite0 only) or a backbone state dict path",
    )
    parser.add_argument("--image-size", type=int, default=224, help="training crop size (px)")
    parser.add_argument(
        "--embed-image-size",
        type=int,
        default=None,
        help="image size the exported encoder embeds at (default: --image-size)",
    )
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=64, help="images per step (2x views)")
    parser.add_argument("--lr", type=float, default=1e-4, help="backbone learning rate (AdamW)")
    parser.add_argument("--head-lr", type=float, default=1e-3, help="projection head learning rate")
    parser.add_argument("--weight-decay", type=float, default=1e-4)
    parser.add_argument("--warmup-fraction", type=float, default=0.1, help="share of steps spent warming up")
    parser.add_argument("--temperature", type=float, default=0.2, help="NT-Xent temperature τ")
    parser.add_argument("--proj-hidden-dim", type=int, default=2048)
    parser.add_argument("--proj-dim", type=int, default=128)
    parser.add_argument("--freeze-blocks", type=int, default=0, help="freeze the stem and the first N blocks")
    parser.add_argument(
        "--bn-eval",
        action="store_true",
        help="keep the backbone's BatchNorm statistics fixed (recommended with --init imagenet)",
    )
    parser.add_argument("--crop-min-scale", type=float, default=0.2)
    parser.add_argument("--jitter", type=float, default=0.4, help="brightness/contrast/saturation jitter")
    parser.add_argument("--hue", type=float, default=0.05, help="hue jitter (0 keeps colours)")
    parser.add_argument("--grayscale-p", type=float, default=0.2)
    parser.add_argument("--blur-p", type=float, default=0.5)
    parser.add_argument("--limit", type=int, default=None, help="use only the first N images")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader worker processes")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_encoder(arch: str, init: str, embed_image_size: int) -> Encoder:
    """A fresh encoder, initialised randomly, from the shipped ImageNet weights, or a local file."""
    encoder = Encoder(EncoderConfig(arch=arch, image_size=embed_image_size))
    if init == "imagenet":
        load_imagenet_weights(arch, encoder.backbone)
    elif init != "random":
        state = torch.load(init, map_location="cpu", weights_only=True)
        result = encoder.backbone.load_state_dict(state, strict=False)
        if result.missing_keys or result.unexpected_keys:
            raise ValueError(
                f"--init {init} does not fit {arch}: missing keys {result.missing_keys[:10]}, "
                f"unexpected keys {result.unexpected_keys[:10]}"
            )
    return encoder


def train_one_epoch(
    model: SimCLR,
    criterion: NTXentLoss,
    loader: Iterable[tuple[tuple[torch.Tensor, torch.Tensor], torch.Tensor]],
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    epoch: int,
    step: int,
    total_steps: int,
    warmup_steps: int,
    bn_eval: bool,
    progress: bool = True,
) -> tuple[float, int]:
    """One pass over ``loader``; returns (mean loss, global step after the epoch)."""
    model.train()
    if bn_eval:
        set_batchnorm_eval(model.encoder)
    losses: list[float] = []
    bar = tqdm(loader, desc=f"epoch {epoch}", disable=not progress, dynamic_ncols=True)
    for (view1, view2), _ in bar:
        started = time.perf_counter()
        lr = set_lr(optimizer, warmup_cosine(step, total_steps, warmup_steps))
        view1 = view1.to(device, non_blocking=True)  # (N, 3, H, W)
        view2 = view2.to(device, non_blocking=True)
        z1, z2 = model(view1, view2)  # (N, P) each
        loss = criterion(z1, z2)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {loss.item()} at step {step}; lower --lr")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        losses.append(loss.item())
        rate = 2 * view1.shape[0] / (time.perf_counter() - started)
        bar.set_postfix(loss=f"{losses[-1]:.4f}", lr=f"{lr:.2e}", views_per_s=f"{rate:.1f}")
    return float(np.mean(losses)) if losses else float("nan"), step


def main(args: argparse.Namespace) -> Path:
    seed_everything(args.seed)
    device = pick_device(args.device)
    augment = AugmentConfig(
        image_size=args.image_size,
        crop_scale=(args.crop_min_scale, 1.0),
        jitter_strength=args.jitter,
        hue=args.hue,
        grayscale_p=args.grayscale_p,
        blur_p=args.blur_p,
    )
    encoder = build_encoder(args.arch, args.init, args.embed_image_size or args.image_size)
    trainable = freeze_blocks(encoder, args.freeze_blocks)
    model = SimCLR(encoder, args.proj_hidden_dim, args.proj_dim).to(device)

    dataset = ImageListDataset(
        args.data,
        TwoViews(view_transform(augment, encoder.config.mean, encoder.config.std)),
        limit=args.limit,
    )
    batch_size = min(args.batch_size, len(dataset))
    if batch_size < 2:
        raise ValueError("SimCLR needs at least 2 training images")
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=args.workers,
        pin_memory=device.type == "cuda",
        persistent_workers=args.workers > 0,
        generator=torch.Generator().manual_seed(args.seed),
    )
    optimizer = torch.optim.AdamW(
        param_groups(model.encoder, args.lr, args.weight_decay)
        + param_groups(model.head, args.head_lr, args.weight_decay)
    )
    criterion = NTXentLoss(args.temperature)
    total_steps = args.epochs * len(loader)
    warmup_steps = max(1, int(args.warmup_fraction * total_steps))
    print(
        f"training {args.arch} ({args.init} init, {trainable:,} trainable backbone parameters) "
        f"on {len(dataset)} images, {len(loader)} steps/epoch of {batch_size}, device {device}"
    )
    step = 0
    started = time.perf_counter()
    for epoch in range(args.epochs):
        mean_loss, step = train_one_epoch(
            model,
            criterion,
            loader,
            optimizer,
            device,
            epoch,
            step,
            total_steps,
            warmup_steps,
            bn_eval=args.bn_eval,
            progress=not args.no_progress,
        )
        print(f"epoch {epoch}: mean loss {mean_loss:.4f}")
    fingerprint = save_encoder(model.encoder.cpu(), args.out)
    minutes = (time.perf_counter() - started) / 60
    print(f"wrote {args.out} (fingerprint {fingerprint[:12]}) after {minutes:.1f} min")
    return Path(args.out)


if __name__ == "__main__":
    main(get_args_parser().parse_args())
