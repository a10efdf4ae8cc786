"""What every self-supervised method offers the trainer."""

from __future__ import annotations

import torch
from torch import nn

from encoder import Encoder


class SSLMethod(nn.Module):
    """An encoder plus the heads (and momentum networks) one method trains it with.

    ``forward(view1, view2)`` returns the loss of a batch; ``on_step_end`` runs after each
    optimiser step (momentum updates, queues). Only ``self.encoder`` is exported.
    """

    encoder: Encoder

    def forward(self, view1: torch.Tensor, view2: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def on_step_end(self, step: int, total_steps: int) -> None:
        """Called after every optimiser step with the global step count (1-based) and the total."""

    def encode_views(
        self, encoder: nn.Module, head: nn.Module, view1: torch.Tensor, view2: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One forward over both views (BatchNorm sees them together): (N, 3, H, W) x 2 -> (N, P) x 2."""
        n = view1.shape[0]
        z = head(encoder(torch.cat([view1, view2])))  # z: (2N, P)
        return z[:n], z[n:]


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, momentum: float) -> None:
    """target = momentum * target + (1 - momentum) * online, parameter by parameter; buffers copied."""
    for t, o in zip(target.parameters(), online.parameters(), strict=True):
        t.mul_(momentum).add_(o.detach(), alpha=1 - momentum)
    for tb, ob in zip(target.buffers(), online.buffers(), strict=True):
        tb.copy_(ob)
