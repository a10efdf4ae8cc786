"""MoCo v2 (He et al., 2020; Chen et al., 2020, https://arxiv.org/abs/2003.04297).

A query encoder learns by contrasting each query with the key of its other view (positive)
and a queue of keys from earlier batches (negatives); the keys come from a momentum copy of the
encoder and its MLP head. Symmetrised: both views serve as query once.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from encoder import Encoder
from training.distributed import gather_no_grad
from training.heads import MLPHead
from training.method import SSLMethod, ema_update


class MoCo(SSLMethod):
    queue: torch.Tensor
    queue_ptr: torch.Tensor

    def __init__(
        self,
        encoder: Encoder,
        hidden_dim: int = 2048,
        out_dim: int = 128,
        queue_size: int = 4096,
        momentum: float = 0.99,
        temperature: float = 0.2,
        koleo_weight: float = 0.0,
    ) -> None:
        super().__init__(koleo_weight)
        if queue_size < 1 or not 0 <= momentum < 1 or temperature <= 0:
            raise ValueError("MoCo needs queue_size >= 1, 0 <= momentum < 1 and temperature > 0")
        self.encoder = encoder
        self.head = MLPHead(encoder.feature_dim, hidden_dim, out_dim)
        self.key_encoder = copy.deepcopy(encoder)
        self.key_head = copy.deepcopy(self.head)
        for p in [*self.key_encoder.parameters(), *self.key_head.parameters()]:
            p.requires_grad_(False)
        self.momentum, self.temperature = momentum, temperature
        self.register_buffer("queue", F.normalize(torch.randn(queue_size, out_dim), dim=1))  # (K, P)
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))
        self._pending: torch.Tensor | None = None

    def _contrast(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """InfoNCE of queries q (N, P) against their keys k (N, P) and the queue (K, P)."""
        positive = (q * k).sum(dim=1, keepdim=True)  # (N, 1)
        negative = q @ self.queue.clone().T  # (N, K); a copy, since the queue changes after the step
        logits = torch.cat([positive, negative], dim=1) / self.temperature  # (N, 1 + K)
        return F.cross_entropy(logits, torch.zeros(q.shape[0], dtype=torch.long, device=q.device))

    def forward(self, view1: torch.Tensor, view2: torch.Tensor) -> torch.Tensor:
        h1, h2, q1, q2 = self.embed_views(self.encoder, self.head, view1, view2)
        q1, q2 = F.normalize(q1.float(), dim=1), F.normalize(q2.float(), dim=1)
        with torch.no_grad():
            k1, k2 = (
                F.normalize(k.float(), dim=1)
                for k in self.encode_views(self.key_encoder, self.key_head, view1, view2)
            )
        loss = (self._contrast(q1, k2) + self._contrast(q2, k1)) / 2
        if self.training:
            self._pending = gather_no_grad(torch.cat([k1, k2]))  # enqueued after the optimiser step
        return self.regularise(loss, h1, h2)

    @torch.no_grad()
    def on_step_end(self, step: int, total_steps: int) -> None:
        ema_update(self.key_encoder, self.encoder, self.momentum)
        ema_update(self.key_head, self.head, self.momentum)
        if self._pending is not None:
            keys = self._pending[-self.queue.shape[0] :]  # (B, P), at most the queue's length
            idx = (self.queue_ptr + torch.arange(keys.shape[0], device=keys.device)) % self.queue.shape[0]
            self.queue[idx] = keys.to(self.queue.dtype)
            self.queue_ptr.copy_((self.queue_ptr + keys.shape[0]) % self.queue.shape[0])
            self._pending = None
