"""NT-Xent, the normalised temperature-scaled cross-entropy loss of SimCLR."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from training.distributed import gather_with_grad, rank


class NTXentLoss(nn.Module):
    """NT-Xent loss from "A Simple Framework for Contrastive Learning of Visual Representations"
    (Chen et al., 2020, https://arxiv.org/abs/2002.05709), eq. 1.

    For a batch of N images seen in two views, every one of the 2N projections is an anchor:
    its positive is the other view of the same image and its negatives are the remaining
    2N - 2 projections (both views of every other image). The loss is the mean over all 2N
    anchors, so both directions (view 1 -> view 2 and view 2 -> view 1) count.

    Under torchrun the negatives come from every rank (gathered with gradients): the loss of
    each rank's anchors equals the single-process loss on the global batch.

    Args:
        temperature: τ, dividing the cosine similarities; smaller is sharper.

    Shapes:
        z1, z2: (N, D) projections of view 1 and view 2 on this rank (normalised here).
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
        z1, z2 = F.normalize(z1.float(), dim=1), F.normalize(z2.float(), dim=1)
        n = z1.shape[0]
        all1, all2 = gather_with_grad(z1), gather_with_grad(z2)  # (M, D) each, M = world * N
        m = all1.shape[0]
        if m < 2:
            raise ValueError("NT-Xent needs at least 2 images per batch (it has no negatives otherwise)")
        anchors = torch.cat([z1, z2])  # anchors: (2N, D)
        candidates = torch.cat([all1, all2])  # candidates: (2M, D)
        logits = anchors @ candidates.T / self.temperature  # logits: (2N, 2M)
        idx = torch.arange(n, device=z1.device) + rank() * n  # this rank's images in the global batch
        own = torch.cat([idx, idx + m])  # where each anchor itself sits among the candidates
        logits[torch.arange(2 * n, device=z1.device), own] = float("-inf")  # not its own negative
        targets = torch.cat([idx + m, idx])  # the other view of each anchor
        return F.cross_entropy(logits, targets)
