"""PCA whitening with shrinkage, learned on a shop's own unlabeled photos and stored in encoder.pt."""

from __future__ import annotations

import torch
from torch import nn


class Whitening(nn.Module):
    """``x -> (x - mean) @ projection``: centre, rotate onto the principal axes, rescale each axis,
    optionally keep only the ``out_dim`` strongest (Jégou and Chum, "Negative evidences and
    co-occurrences in image retrieval", ECCV 2012).

    The buffers are part of the encoder's state dict, so the fingerprint covers them. A fresh
    module is the identity (zero mean, identity projection) until ``fit`` is called.

    Shapes: x (N, D) -> (N, out_dim).
    """

    mean: torch.Tensor  # (D,)
    projection: torch.Tensor  # (D, out_dim)

    def __init__(self, in_dim: int, out_dim: int = 0) -> None:
        super().__init__()
        out_dim = out_dim or in_dim
        if not 1 <= out_dim <= in_dim:
            raise ValueError(f"whitening keeps 1..{in_dim} dimensions, got {out_dim}")
        self.register_buffer("mean", torch.zeros(in_dim))
        self.register_buffer("projection", torch.eye(in_dim)[:, :out_dim].clone())

    @property
    def out_dim(self) -> int:
        return int(self.projection.shape[1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) @ self.projection  # (N, out_dim)

    @torch.no_grad()
    def fit(self, descriptors: torch.Tensor, shrinkage: float = 0.5) -> None:
        """Learn mean and projection from descriptors (N, D), e.g. L2-normalised embeddings.

        ``shrinkage`` s in [0, 1] pulls the covariance towards a scaled identity,
        C_s = (1 - s) C + s tr(C)/D I, before whitening with C_s^(-1/2): s = 0 whitens fully
        (noisy directions of a small photo set get blown up), s = 1 only centres and rotates
        (with ``out_dim`` < D: plain PCA). Needs N >= 2.
        """
        if not 0.0 <= shrinkage <= 1.0:
            raise ValueError(f"whitening shrinkage must be in [0, 1], got {shrinkage}")
        x = descriptors.double()
        if x.dim() != 2 or x.shape[1] != self.mean.shape[0] or x.shape[0] < 2:
            raise ValueError(f"expected (N >= 2, {self.mean.shape[0]}) descriptors, got {tuple(x.shape)}")
        mean = x.mean(dim=0)  # (D,)
        centred = x - mean
        cov = centred.T @ centred / (x.shape[0] - 1)  # cov: (D, D)
        d = cov.shape[0]
        cov = (1 - shrinkage) * cov + shrinkage * (torch.trace(cov) / d) * torch.eye(d, dtype=cov.dtype)
        eigvals, eigvecs = torch.linalg.eigh(cov)  # ascending
        order = torch.argsort(eigvals, descending=True)[: self.out_dim]
        scale = eigvals[order].clamp(min=1e-12 * float(eigvals.max().clamp(min=1e-30))).rsqrt()
        self.mean.copy_(mean.to(self.mean.dtype))
        self.projection.copy_((eigvecs[:, order] * scale).to(self.projection.dtype))  # (D, out_dim)
