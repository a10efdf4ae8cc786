"""SimCLR: the encoder followed by a 2-layer projection head; the head is dropped at export."""

from __future__ import annotations

import torch
from torch import nn

from encoder import Encoder


class ProjectionHead(nn.Sequential):
    """Linear -> BatchNorm -> ReLU -> Linear, as in SimCLR (features (N, D) -> (N, out_dim))."""

    def __init__(self, in_dim: int, hidden_dim: int = 2048, out_dim: int = 128) -> None:
        super().__init__(
            nn.Linear(in_dim, hidden_dim, bias=False),
            nn.BatchNorm1d(hidden_dim),
            nn.ReLU(inplace=True),
            nn.Linear(hidden_dim, out_dim),
        )


class SimCLR(nn.Module):
    """Encoder + projection head. ``forward(view1, view2)`` returns the two projections."""

    def __init__(self, encoder: Encoder, hidden_dim: int = 2048, out_dim: int = 128) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = ProjectionHead(encoder.embed_dim, hidden_dim, out_dim)

    def forward(self, view1: torch.Tensor, view2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """view1, view2: (N, 3, H, W) -> z1, z2: (N, out_dim). One forward over the 2N views,
        so BatchNorm sees both views together."""
        n = view1.shape[0]
        z = self.head(self.encoder(torch.cat([view1, view2], dim=0)))  # z: (2N, out_dim)
        return z[:n], z[n:]
