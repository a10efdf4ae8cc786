"""DDP on CPU with gloo, 2 processes: the same loss and gradients as one process on the global batch."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from training.distributed import gather_no_grad, gather_with_grad, shutdown_distributed
from training.loss import NTXentLoss

N, D_IN, D_OUT, TAU = 8, 6, 4, 0.3


def make_batch() -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    x1, x2 = torch.randn(N, D_IN, generator=g), torch.randn(N, D_IN, generator=g)
    model = nn.Linear(D_IN, D_OUT)
    with torch.no_grad():
        model.weight.copy_(torch.randn(D_OUT, D_IN, generator=g))
        model.bias.copy_(torch.randn(D_OUT, generator=g))
    return x1, x2, model.state_dict()


def _worker(rank: int, world: int, init_file: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        x1, x2, state = make_batch()
        model = nn.Linear(D_IN, D_OUT)
        model.load_state_dict(state)
        ddp = nn.parallel.DistributedDataParallel(model)
        part = slice(rank * N // world, (rank + 1) * N // world)  # this rank's share of the global batch
        loss = NTXentLoss(TAU)(ddp(x1[part]), ddp(x2[part]))
        loss.backward()  # DDP averages the gradients over ranks
        global_loss = loss.detach().clone()
        dist.all_reduce(global_loss)
        global_loss /= world

        marker = torch.full((2, 3), float(rank))
        gathered = gather_no_grad(marker)
        leaf = torch.full((2, 3), float(rank + 1), requires_grad=True)
        (gather_with_grad(leaf) * (torch.arange(world * 2).float()[:, None] + 1)).sum().backward()
        if rank == 0:
            torch.save(
                {
                    "loss": global_loss,
                    "weight": model.weight.grad,
                    "bias": model.bias.grad,
                    "gathered": gathered,
                },
                out,
            )
        torch.save({"leaf_grad": leaf.grad}, f"{out}.{rank}")
    finally:
        shutdown_distributed()


def test_ddp_nt_xent_equals_the_single_process_loss_and_gradients(tmp_path: Path) -> None:
    x1, x2, state = make_batch()
    model = nn.Linear(D_IN, D_OUT)
    model.load_state_dict(state)
    loss = NTXentLoss(TAU)(model(x1), model(x2))
    loss.backward()

    out = tmp_path / "rank0.pt"
    mp.spawn(_worker, args=(2, str(tmp_path / "init"), str(out)), nprocs=2, join=True)
    got = torch.load(out, weights_only=True)
    torch.testing.assert_close(got["loss"], loss.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got["weight"], model.weight.grad, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got["bias"], model.bias.grad, rtol=1e-5, atol=1e-6)
    # gathers are rank-major, and each rank's slice gets the gradient every rank's loss sends it
    torch.testing.assert_close(got["gathered"], torch.tensor([0.0, 0.0, 1.0, 1.0])[:, None].expand(4, 3))
    for rank in range(2):
        leaf_grad = torch.load(f"{out}.{rank}", weights_only=True)["leaf_grad"]
        expected = 2 * (torch.arange(2 * rank, 2 * rank + 2).float()[:, None] + 1).expand(2, 3)
        torch.testing.assert_close(leaf_grad, expected)
