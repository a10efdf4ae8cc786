"""Self-supervised training of the image encoder on unlabeled catalog photos.

    lookalike train --data PHOTOS_DIR --method simclr --arch efficientnet_lite0 --init imagenet \
        --freeze-blocks 12 --bn-eval --image-size 160 --embed-image-size 224 --out encoder.pt

Methods: SimCLR, MoCo v2, BYOL. Multi-GPU / multi-node: ``torchrun --nproc-per-node G -m
lookalike train ...`` (``--batch-size`` is per process). Only the backbone is exported:
``encoder.pt`` is what ``lookalike build`` and the server load.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from encoder import Encoder, eval_transform, pick_device, save_encoder
from training.augment import (
    SHOPPER_PRESET,
    AugmentConfig,
    TwoViews,
    shopper_probabilities,
    view_transform,
)
from training.byol import BYOL
from training.data import ImageListDataset
from training.distributed import DistInfo, init_distributed, shutdown_distributed
from training.engine import StepSettings, train_one_epoch, unwrap
from training.freeze import backbone_blocks, freeze_blocks
from training.init import build_encoder
from training.method import SSLMethod
from training.moco import MoCo
from training.optim import build_optimizer, param_groups
from training.options import get_args_parser
from training.precise_bn import recompute_batchnorm_stats
from training.recipe import (
    default_epochs,
    default_freeze_blocks,
    fill_defaults,
)
from training.simclr import SimCLR
from training.state import load_checkpoint, save_checkpoint
from training.whiten import fit_whitening


def head_options(args: argparse.Namespace) -> dict[str, Any]:
    """The retrieval-head fields of ``EncoderConfig`` chosen on the command line."""
    return {
        "pooling": args.pooling,
        "gem_p": args.gem_p,
        "flip": args.flip,
        "scales": tuple(args.scales),
        "whiten": args.whiten,
        "whiten_dim": args.whiten_dim if args.whiten else 0,
    }


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def build_method(args: argparse.Namespace, encoder: Encoder) -> SSLMethod:
    koleo = args.koleo_weight
    if args.method == "simclr":
        return SimCLR(encoder, args.proj_hidden_dim, args.proj_dim or 128, args.temperature, koleo)
    if args.method == "moco":
        return MoCo(
            encoder,
            args.proj_hidden_dim,
            args.proj_dim or 128,
            args.moco_queue,
            args.moco_momentum,
            args.temperature,
            koleo,
        )
    return BYOL(encoder, args.proj_hidden_dim, args.proj_dim or 256, args.byol_momentum, koleo)


def _optimizer(args: argparse.Namespace, method: SSLMethod) -> torch.optim.Optimizer:
    """Backbone groups at --lr, every head at --head-lr; no decay on norms and biases."""
    heads = [m for name, m in method.named_children() if name != "encoder"]
    groups = param_groups(method.encoder, args.lr, args.weight_decay)
    for head in heads:
        groups += param_groups(head, args.head_lr, args.weight_decay)
    return build_optimizer(args.optimizer, groups, args.lr, args.momentum)


def _log(path: Path | None, record: dict[str, Any]) -> None:
    print(json.dumps(record))
    if path is not None:
        with path.open("a") as f:
            f.write(json.dumps(record) + "\n")


def main(args: argparse.Namespace) -> Path:
    device = pick_device(args.device)
    dist_info: DistInfo = init_distributed(device.type)
    if device.type == "cuda" and dist_info.enabled:
        device = torch.device("cuda", dist_info.local_rank)
        torch.cuda.set_device(device)
    if args.deterministic:
        torch.use_deterministic_algorithms(True)
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    seed_everything(args.seed)
    augment = AugmentConfig(
        image_size=args.image_size,
        crop_scale=(args.crop_min_scale, 1.0),
        jitter_strength=args.jitter,
        hue=args.hue,
        grayscale_p=args.grayscale_p,
        blur_p=args.blur_p,
    )
    chosen = {name: getattr(args, name) for name in SHOPPER_PRESET}
    for name, p in shopper_probabilities(chosen, args.shopper_augment).items():
        setattr(augment, name, p)
    fill_defaults(args)
    encoder = build_encoder(args.arch, args.init, args.embed_image_size, head_options(args))
    if args.freeze_blocks is None:
        args.freeze_blocks = default_freeze_blocks(args.init, len(backbone_blocks(encoder)[1]))
    trainable = freeze_blocks(encoder, args.freeze_blocks)
    method = build_method(args, encoder)
    if args.sync_bn and dist_info.enabled and device.type == "cuda":
        method = nn.SyncBatchNorm.convert_sync_batchnorm(method)
    channels_last = device.type == "cuda"
    method = method.to(device)
    if channels_last:
        method = method.to(memory_format=torch.channels_last)

    dataset = ImageListDataset(args.data, lambda image: image, limit=args.limit)
    # The views are drawn once the photos are listed: the background pool is all of them.
    dataset.transform = TwoViews(
        view_transform(augment, encoder.config.mean, encoder.config.std, background_paths=dataset.paths)
    )
    if args.epochs is None:
        args.epochs = default_epochs(len(dataset))
    batch_size = min(args.batch_size, len(dataset) // dist_info.world_size)
    if batch_size < 2:
        raise ValueError("self-supervised training needs at least 2 training images per process")
    sampler: DistributedSampler[Any] | None = (
        DistributedSampler(dataset, dist_info.world_size, dist_info.rank, seed=args.seed, drop_last=True)
        if dist_info.enabled
        else None
    )
    generator = torch.Generator()
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=sampler is None,
        sampler=sampler,
        drop_last=True,
        num_workers=args.workers,
        pin_memory=device.type == "cuda",
        persistent_workers=False,
        generator=generator,
    )
    optimizer = _optimizer(args, method)
    amp_dtype = None
    if device.type == "cuda" and not args.no_amp:
        amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None

    output_dir = Path(args.output_dir) if args.output_dir else None
    if output_dir is not None:
        output_dir.mkdir(parents=True, exist_ok=True)
    start_epoch, step = 0, 0
    if args.resume:
        resume = (output_dir / "checkpoint.pt") if args.resume == "auto" and output_dir else Path(args.resume)
        start_epoch, step = load_checkpoint(resume, model=method, optimizer=optimizer, scaler=scaler)
        print(f"resumed from {resume} after epoch {start_epoch} (step {step})")
    model: nn.Module = method
    if dist_info.enabled:
        model = nn.parallel.DistributedDataParallel(
            method, device_ids=[device.index] if device.type == "cuda" else None
        )
    settings = StepSettings(
        total_steps=args.epochs * len(loader),
        warmup_steps=max(1, int(args.warmup_fraction * args.epochs * len(loader))),
        bn_eval=args.bn_eval,
        amp_dtype=amp_dtype,
        channels_last=channels_last,
        progress=not args.no_progress and dist_info.is_main,
    )
    log_path = output_dir / "log.jsonl" if output_dir and dist_info.is_main else None
    if dist_info.is_main:
        print(
            f"training {args.method} on {args.arch} ({args.init} init, {args.freeze_blocks} blocks "
            f"frozen, BatchNorm statistics {'kept' if args.bn_eval else 'updated'}, {trainable:,} "
            f"trainable backbone parameters), {len(dataset)} images, {args.epochs} epochs of "
            f"{len(loader)} steps of {batch_size} x {dist_info.world_size} process(es), {args.image_size} px "
            f"(embedding at {args.embed_image_size} px), {device}, amp {amp_dtype}"
        )
        if args.val and start_epoch == 0:
            _log(log_path, {"epoch": 0, "knn_top1": _knn(args, method.encoder)})
    started = time.perf_counter()
    for epoch in range(start_epoch, args.epochs):
        seed_everything(args.seed + 1000 * epoch + dist_info.rank)  # an epoch depends on (seed, epoch) only
        generator.manual_seed(args.seed + epoch)
        if sampler is not None:
            sampler.set_epoch(epoch)
        stats, step = train_one_epoch(model, loader, optimizer, scaler, device, epoch, step, settings)
        if dist_info.is_main:
            record: dict[str, Any] = {
                "epoch": epoch + 1,
                "step": step,
                **{k: round(v, 6) for k, v in stats.items()},
            }
            if args.val and ((epoch + 1) % args.knn_every == 0 or epoch + 1 == args.epochs):
                record["knn_top1"] = _knn(args, method.encoder)
            _log(log_path, record)
            if output_dir is not None:
                save_checkpoint(
                    output_dir / "checkpoint.pt",
                    model=method,
                    optimizer=optimizer,
                    scaler=scaler,
                    epoch=epoch + 1,
                    step=step,
                    args=vars(args),
                )
    out = Path(args.out)
    if dist_info.is_main:
        if args.precise_bn_images > 0 and not args.bn_eval:
            _precise_bn(args, method.encoder, device)
        if args.whiten:
            seen = fit_whitening(
                method.encoder, args.data, args.whiten_shrinkage, device, args.batch_size, args.workers,
                args.limit,
            )
            print(f"learned PCA whitening on {seen} photos (shrinkage {args.whiten_shrinkage})")
        fingerprint = save_encoder(unwrap(model).encoder, out)
        minutes = (time.perf_counter() - started) / 60
        print(f"wrote {out} (fingerprint {fingerprint[:12]}) after {minutes:.1f} min")
    shutdown_distributed()  # the other ranks wait here until the encoder is written
    return out


def _precise_bn(args: argparse.Namespace, encoder: Encoder, device: torch.device) -> None:
    """BatchNorm statistics of the exported encoder, recomputed on the photos as it will see them."""
    cfg = encoder.config
    dataset = ImageListDataset(args.data, eval_transform(cfg.image_size, cfg.mean, cfg.std), limit=args.limit)
    loader = DataLoader(
        dataset,
        batch_size=args.batch_size,
        shuffle=True,
        num_workers=args.workers,
        generator=torch.Generator().manual_seed(args.seed),
    )
    steps = max(1, args.precise_bn_images // args.batch_size)
    batches = (images for _, (images, _) in zip(range(steps), loader, strict=False))
    seen = recompute_batchnorm_stats(encoder, batches, device)
    print(f"recomputed BatchNorm statistics on {seen} images")


def _knn(args: argparse.Namespace, encoder: Encoder) -> float:
    from training.knn import knn_monitor

    return round(knn_monitor(encoder, args.val, k=args.knn_k, workers=args.workers), 4)


if __name__ == "__main__":
    main(get_args_parser().parse_args())
