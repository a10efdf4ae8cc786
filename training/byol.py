"""BYOL (Grill et al., 2020, https://arxiv.org/abs/2006.07733): no negatives.

The online network (encoder, projector, predictor) predicts the target network's projection of
the other view; the target is an exponential moving average of the online encoder and projector,
its momentum rising from ``base_momentum`` to 1 along a cosine schedule.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F

from encoder import Encoder
from training.heads import MLPHead
from training.method import SSLMethod, ema_update


def regression_loss(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """2 - 2 cos(p, z), averaged over the batch: p, z (N, P) -> scalar."""
    return (2 - 2 * (F.normalize(p.float(), dim=1) * F.normalize(z.float(), dim=1)).sum(dim=1)).mean()


class BYOL(SSLMethod):
    def __init__(
        self,
        encoder: Encoder,
        hidden_dim: int = 2048,
        out_dim: int = 256,
        base_momentum: float = 0.99,
        koleo_weight: float = 0.0,
    ) -> None:
        super().__init__(koleo_weight)
        if not 0 <= base_momentum < 1:
            raise ValueError(f"base_momentum must be in [0, 1), got {base_momentum}")
        self.encoder = encoder
        self.projector = MLPHead(encoder.feature_dim, hidden_dim, out_dim)
        self.predictor = MLPHead(out_dim, hidden_dim, out_dim)
        self.target_encoder = copy.deepcopy(encoder)
        self.target_projector = copy.deepcopy(self.projector)
        for p in [*self.target_encoder.parameters(), *self.target_projector.parameters()]:
            p.requires_grad_(False)
        self.base_momentum = base_momentum
        self.momentum = base_momentum

    def forward(self, view1: torch.Tensor, view2: torch.Tensor) -> torch.Tensor:
        h1, h2, z1, z2 = self.embed_views(self.encoder, self.projector, view1, view2)  # z: (N, P) each
        p1, p2 = self.predictor(z1), self.predictor(z2)
        with torch.no_grad():
            t1, t2 = self.encode_views(self.target_encoder, self.target_projector, view1, view2)
        return self.regularise(regression_loss(p1, t2) + regression_loss(p2, t1), h1, h2)

    @torch.no_grad()
    def on_step_end(self, step: int, total_steps: int) -> None:
        progress = min(1.0, step / max(1, total_steps))
        self.momentum = 1 - (1 - self.base_momentum) * (math.cos(math.pi * progress) + 1) / 2
        ema_update(self.target_encoder, self.encoder, self.momentum)
        ema_update(self.target_projector, self.projector, self.momentum)
