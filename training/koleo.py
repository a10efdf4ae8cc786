"""KoLeo, the differential-entropy regulariser of SSCD: spread the embeddings apart."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from training.distributed import gather_with_grad, rank


class KoLeoLoss(nn.Module):
    """KoLeo loss from "Spreading vectors for similarity search" (Sablayrolles et al., ICLR 2019,
    https://arxiv.org/abs/1806.03198), the differential entropy regulariser of "A Self-Supervised
    Descriptor for Image Copy Detection" (SSCD; Pizzi et al., CVPR 2022,
    https://arxiv.org/abs/2202.10261), section 3.2.

    The Kozachenko-Leonenko estimator of the differential entropy of the embeddings is, up to
    constants, the mean log distance of each embedding to its nearest neighbour; the loss is its
    negative, on L2-normalised embeddings::

        L_KoLeo = -1/n * sum_i log(min_{j != i} ||z_i - z_j||_2 + eps)

    Minimising it pushes each embedding away from its nearest neighbour, so near-duplicates of
    different products stop collapsing onto one point of the sphere. SSCD adds it to InfoNCE
    as ``L = L_InfoNCE + lambda * L_KoLeo`` with lambda = 30 (its ``--entropy_weight``, with a
    temperature of 0.05), on the descriptor it searches with; and its nearest neighbour is the
    nearest *non-matching* embedding: the other view of the same image is no neighbour (the
    contrastive loss pulls it close, the regulariser must not push it away). So here:

    - ``forward(z)``: one set of n embeddings, neighbours = every other row (the formula above).
    - ``forward(z1, z2)``: two views of N images; each of the 2N embeddings finds its neighbour
      among both views of the *other* images, as SSCD does.

    Under torchrun, with ``gather_distributed`` (default), the neighbours come from every
    rank's batch (gathered with gradients, as SSCD's cross-GPU batch): each rank's loss is that
    of its own embeddings against the global batch. Without it the search stays in the local
    batch, a weaker estimate (fewer candidates, larger distances).

    Args:
        eps: added to the distance inside the log, so two identical embeddings give a large
            but finite loss.
        gather_distributed: search for neighbours in the global batch under torchrun.

    Shapes:
        z1: (N, D), z2: (N, D) or None; normalised here. returns: scalar loss.

    Examples:
        >>> import torch
        >>> loss_fn = KoLeoLoss()
        >>> z = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])  # evenly spread
        >>> round(loss_fn(z).item(), 4)  # -log(sqrt(2))
        -0.3466
        >>> crowded = torch.tensor([[1.0, 0.0], [1.0, 0.01], [-1.0, 0.0], [0.0, -1.0]])
        >>> bool(loss_fn(crowded) > loss_fn(z))  # two embeddings almost on top of each other
        True
        >>> view1, view2 = torch.randn(8, 16), torch.randn(8, 16)
        >>> loss_fn(view1, view2).shape  # the other view of an image is no neighbour
        torch.Size([])
    """

    def __init__(self, eps: float = 1e-8, gather_distributed: bool = True) -> None:
        super().__init__()
        if eps <= 0:
            raise ValueError(f"eps must be > 0, got {eps}")
        self.eps = eps
        self.gather_distributed = gather_distributed

    def forward(self, z1: torch.Tensor, z2: torch.Tensor | None = None) -> torch.Tensor:
        if z1.dim() != 2 or (z2 is not None and z2.shape != z1.shape):
            shapes = f"{tuple(z1.shape)}" + ("" if z2 is None else f" and {tuple(z2.shape)}")
            raise ValueError(f"expected (N, D) embeddings (two of one shape for two views), got {shapes}")
        views = [F.normalize(z.float(), dim=1) for z in (z1, z2) if z is not None]
        n = views[0].shape[0]
        gather = gather_with_grad if self.gather_distributed else (lambda t: t)
        everyone = [gather(v) for v in views]  # (M, D) each, M = world * N (or N)
        m = everyone[0].shape[0]
        if m < 2:
            raise ValueError("KoLeo needs at least 2 images per batch (one has no neighbour)")
        anchors = torch.cat(views)  # anchors: (V * N, D), V views
        candidates = torch.cat(everyone)  # candidates: (V * M, D)
        # Which candidate is nearest, from the dot products of unit vectors: ||a - b||^2 = 2 - 2 a.b
        dist2 = 2 - 2 * anchors @ candidates.T  # dist2: (V * N, V * M)
        offset = rank() * n if self.gather_distributed else 0
        own = torch.arange(n, device=z1.device) + offset  # this rank's images among the candidates
        rows = torch.arange(len(views) * n, device=z1.device)
        image = own.repeat(len(views))  # (V * N,) the image of each anchor
        for v in range(len(views)):  # no anchor is its own neighbour, nor any view of its image
            dist2[rows, image + v * m] = float("inf")
        nearest = candidates[dist2.argmin(dim=1)]  # nearest: (V * N, D)
        # The distance itself from the difference: 2 - 2 a.b loses float32 precision below ~1e-3.
        return -torch.log((anchors - nearest).norm(dim=1) + self.eps).mean()
