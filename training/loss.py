"""NT-Xent, the normalised temperature-scaled cross-entropy loss of SimCLR."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class NTXentLoss(nn.Module):
    """NT-Xent loss from "A Simple Framework for Contrastive Learning of Visual Representations"
    (Chen et al., 2020, https://arxiv.org/abs/2002.05709), eq. 1.

    For a batch of N images seen in two views, every one of the 2N projections is an anchor:
    its positive is the other view of the same image and its negatives are the remaining
    2N - 2 projections (both views of every other image). The loss is the mean over all 2N
    anchors, so both directions (view 1 -> view 2 and view 2 -> view 1) count.

    Args:
        temperature: τ, dividing the cosine similarities; smaller is sharper.

    Shapes:
        z1, z2: (N, D) projections of view 1 and view 2 (any scale; normalised here).
        returns: scalar loss.
    """

    def __init__(self, temperature: float = 0.2) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = temperature

    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        if z1.shape != z2.shape or z1.dim() != 2:
            raise ValueError(f"expected two (N, D) tensors of one shape, got {z1.shape} and {z2.shape}")
        n = z1.shape[0]
        if n < 2:
            raise ValueError("NT-Xent needs at least 2 images per batch (it has no negatives otherwise)")
        z = F.normalize(torch.cat([z1, z2], dim=0).float(), dim=1)  # z: (2N, D)
        logits = z @ z.T / self.temperature  # logits: (2N, 2N)
        self_mask = torch.eye(2 * n, dtype=torch.bool, device=z.device)
        logits = logits.masked_fill(self_mask, float("-inf"))  # an anchor is not its own negative
        idx = torch.arange(n, device=z.device)
        targets = torch.cat([idx + n, idx])  # targets: (2N,), the other view of each anchor
        return F.cross_entropy(logits, targets)
