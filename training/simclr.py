"""SimCLR (Chen et al., 2020): the encoder, a 2-layer projection head and NT-Xent."""

from __future__ import annotations

import torch

from encoder import Encoder
from training.heads import MLPHead
from training.loss import NTXentLoss
from training.method import SSLMethod


class SimCLR(SSLMethod):
    """``forward(view1, view2)`` -> NT-Xent over all 2N - 2 negatives (from every rank)."""

    def __init__(
        self,
        encoder: Encoder,
        hidden_dim: int = 2048,
        out_dim: int = 128,
        temperature: float = 0.2,
        koleo_weight: float = 0.0,
    ) -> None:
        super().__init__(koleo_weight)
        self.encoder = encoder
        self.head = MLPHead(encoder.feature_dim, hidden_dim, out_dim)
        self.criterion = NTXentLoss(temperature)

    def project(self, view1: torch.Tensor, view2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """view1, view2: (N, 3, H, W) -> z1, z2: (N, out_dim)."""
        return self.encode_views(self.encoder, self.head, view1, view2)

    def forward(self, view1: torch.Tensor, view2: torch.Tensor) -> torch.Tensor:
        h1, h2, z1, z2 = self.embed_views(self.encoder, self.head, view1, view2)
        return self.regularise(self.criterion(z1, z2), h1, h2)
