"""MLP heads put on top of the encoder during self-supervised training; dropped at export."""

from __future__ import annotations

from torch import nn


class MLPHead(nn.Sequential):
    """Linear -> BatchNorm -> ReLU -> Linear: (N, in_dim) -> (N, out_dim).

    The projection head of SimCLR and MoCo v2, and the projector and predictor of BYOL.
    """

    def __init__(self, in_dim: int, hidden_dim: int = 2048, out_dim: int = 128) -> None:
        super().__init__(
            nn.Linear(in_dim, hidden_dim, bias=False),
            nn.BatchNorm1d(hidden_dim),
            nn.ReLU(inplace=True),
            nn.Linear(hidden_dim, out_dim),
        )
