"""Training checkpoints: everything needed to continue a run exactly, written atomically.

Unlike ``encoder.pt`` (weights only, safe to load from anywhere), a training checkpoint holds
Python RNG states and the argument namespace, so it is loaded with ``weights_only=False``:
resume only from checkpoints this trainer wrote.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from encoder.atomic import atomic_write


def rng_states() -> dict[str, Any]:
    states: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict[str, Any]) -> None:
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save_checkpoint(
    path: Path,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None,
    epoch: int,
    step: int,
    args: dict[str, Any],
) -> None:
    """Write the state after ``epoch`` completed epochs (``step`` optimiser steps) to ``path``."""
    payload = {
        "model": model.state_dict(),  # encoder, heads, momentum / target networks, MoCo queue
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else None,
        "epoch": epoch,
        "step": step,
        "args": args,
        "rng": rng_states(),
    }
    with atomic_write(path, mode=0o600) as f:  # holds the run's arguments: private by default
        torch.save(payload, f)


def load_checkpoint(
    path: Path, *, model: nn.Module, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None
) -> tuple[int, int]:
    """Restore a run in place; returns (completed epochs, optimiser steps)."""
    payload = torch.load(path, map_location="cpu", weights_only=False)
    model.load_state_dict(payload["model"], strict=True)
    optimizer.load_state_dict(payload["optimizer"])
    if scaler is not None and payload["scaler"] is not None:
        scaler.load_state_dict(payload["scaler"])
    restore_rng_states(payload["rng"])
    return int(payload["epoch"]), int(payload["step"])
