"""What every self-supervised method offers the trainer."""

from __future__ import annotations

import torch
from torch import nn

from encoder import Encoder
from training.koleo import KoLeoLoss


class SSLMethod(nn.Module):
    """An encoder plus the heads (and momentum networks) one method trains it with.

    ``forward(view1, view2)`` returns the loss of a batch; ``on_step_end`` runs after each
    optimiser step (momentum updates, queues). Only ``self.encoder`` is exported.

    ``koleo_weight`` > 0 adds the KoLeo regulariser of SSCD (``training/koleo.py``) on the
    encoder's embeddings of both views (the pooled features the exported encoder normalises
    and searches with, not the projections, which are dropped at export): each method passes
    its loss through ``regularise``. 0 (default) leaves the method as it was.
    """

    encoder: Encoder

    def __init__(self, koleo_weight: float = 0.0) -> None:
        super().__init__()
        if koleo_weight < 0:
            raise ValueError(f"koleo_weight must be >= 0, got {koleo_weight}")
        self.koleo_weight = koleo_weight
        self.koleo = KoLeoLoss()

    def forward(self, view1: torch.Tensor, view2: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def on_step_end(self, step: int, total_steps: int) -> None:
        """Called after every optimiser step with the global step count (1-based) and the total."""

    def encode_views(
        self, encoder: nn.Module, head: nn.Module, view1: torch.Tensor, view2: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One forward over both views (BatchNorm sees them together): (N, 3, H, W) x 2 -> (N, P) x 2."""
        _, _, z1, z2 = self.embed_views(encoder, head, view1, view2)
        return z1, z2

    def embed_views(
        self, encoder: nn.Module, head: nn.Module, view1: torch.Tensor, view2: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``encode_views`` that also returns the encoder's embeddings: (h1, h2, z1, z2), h (N, E)."""
        n = view1.shape[0]
        h = encoder(torch.cat([view1, view2]))  # h: (2N, E)
        z = head(h)  # z: (2N, P)
        return h[:n], h[n:], z[:n], z[n:]

    def regularise(self, loss: torch.Tensor, h1: torch.Tensor, h2: torch.Tensor) -> torch.Tensor:
        """loss + koleo_weight * KoLeo(h1, h2) over the embeddings of both views; ``loss`` itself
        when the weight is 0."""
        if self.koleo_weight == 0:
            return loss
        return loss + self.koleo_weight * self.koleo(h1, h2)


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, momentum: float) -> None:
    """target = momentum * target + (1 - momentum) * online, parameter by parameter; buffers copied."""
    for t, o in zip(target.parameters(), online.parameters(), strict=True):
        t.mul_(momentum).add_(o.detach(), alpha=1 - momentum)
    for tb, ob in zip(target.buffers(), online.buffers(), strict=True):
        tb.copy_(ob)
