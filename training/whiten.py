"""Learning the encoder's PCA whitening on the shop's own unlabeled photos, after training."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from encoder import Encoder, eval_transform
from training.data import ImageListDataset


@torch.inference_mode()
def fit_whitening(
    encoder: Encoder,
    sources: str | Path | Sequence[str | Path],
    shrinkage: float,
    device: torch.device,
    batch_size: int = 32,
    workers: int = 0,
    limit: int | None = None,
) -> int:
    """Embed the photos of ``sources`` as the exported encoder will (eval transform, flip and
    scales of its head) and fit ``encoder.whitening`` on them; returns how many photos it saw."""
    if encoder.whitening is None:
        raise ValueError("the encoder has no whitening to fit (its config says whiten=False)")
    cfg = encoder.config
    transform = eval_transform(cfg.image_size, cfg.mean, cfg.std)
    paths = [sources] if isinstance(sources, str | Path) else list(sources)
    descriptors = []
    for source in paths:
        dataset = ImageListDataset(source, transform, limit=limit)
        loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers)
        was_training = encoder.training
        encoder.eval()
        descriptors += [encoder.descriptors(x.to(device)).cpu() for x, _ in loader]  # (B, feature_dim)
        encoder.train(was_training)
    stacked = torch.cat(descriptors)  # (N, feature_dim)
    encoder.whitening.fit(stacked, shrinkage)
    return int(stacked.shape[0])
