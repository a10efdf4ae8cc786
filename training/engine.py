"""One epoch of self-supervised training, whatever the method."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn
from tqdm import tqdm

from encoder import Encoder
from training.freeze import set_batchnorm_eval
from training.method import SSLMethod
from training.optim import set_lr, warmup_cosine


@dataclass
class StepSettings:
    """How each step runs: schedule, precision, memory format, BatchNorm policy."""

    total_steps: int
    warmup_steps: int
    bn_eval: bool = False
    amp_dtype: torch.dtype | None = None  # bf16 / fp16 autocast on CUDA, None for full precision
    channels_last: bool = False
    progress: bool = True


def unwrap(model: nn.Module) -> SSLMethod:
    """The method inside a DistributedDataParallel wrapper (or the model itself)."""
    inner = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
    assert isinstance(inner, SSLMethod)
    return inner


def train_one_epoch(
    model: nn.Module,
    loader: Iterable[tuple[tuple[torch.Tensor, torch.Tensor], torch.Tensor]],
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None,
    device: torch.device,
    epoch: int,
    step: int,
    settings: StepSettings,
) -> tuple[dict[str, float], int]:
    """One pass over ``loader``; returns ({loss, lr, images_per_s, seconds}, global step after it)."""
    method = unwrap(model)
    model.train()
    if settings.bn_eval:  # every backbone copy (MoCo's key encoder, BYOL's target) keeps its statistics
        for module in method.modules():
            if isinstance(module, Encoder):
                set_batchnorm_eval(module)
    autocast = (
        torch.autocast(device.type, dtype=settings.amp_dtype)
        if settings.amp_dtype
        else contextlib.nullcontext()
    )
    memory_format = torch.channels_last if settings.channels_last else torch.contiguous_format
    losses: list[float] = []
    images, lr = 0, 0.0
    started = time.perf_counter()
    bar = tqdm(loader, desc=f"epoch {epoch}", disable=not settings.progress, dynamic_ncols=True)
    for (view1, view2), _ in bar:
        lr = set_lr(optimizer, warmup_cosine(step, settings.total_steps, settings.warmup_steps))
        view1 = view1.to(device, non_blocking=True, memory_format=memory_format)  # (N, 3, H, W)
        view2 = view2.to(device, non_blocking=True, memory_format=memory_format)
        with autocast:
            loss = model(view1, view2)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {loss.item()} at step {step}; lower --lr")
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        step += 1
        method.on_step_end(step, settings.total_steps)
        losses.append(loss.item())
        images += view1.shape[0]
        rate = images / (time.perf_counter() - started)
        bar.set_postfix(loss=f"{losses[-1]:.4f}", lr=f"{lr:.2e}", img_per_s=f"{rate:.1f}")
    seconds = time.perf_counter() - started
    mean_loss = sum(losses) / len(losses) if losses else float("nan")
    stats = {"loss": mean_loss, "lr": lr, "images_per_s": images / seconds, "seconds": seconds}
    if device.type == "cuda":
        stats["gpu_max_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    return stats, step
