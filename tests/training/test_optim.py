"""LARS, build_optimizer, param_groups tagging and the warmup-cosine schedule."""

from __future__ import annotations

from itertools import pairwise

import pytest
import torch
from torch import nn

from training.optim import LARS, OPTIMIZERS, build_optimizer, param_groups, set_lr, warmup_cosine


def _linear_with_grads(seed: int = 0) -> nn.Linear:
    """A small Linear layer whose weight and bias both carry a gradient from one backward pass."""
    torch.manual_seed(seed)
    layer = nn.Linear(5, 3).double()
    x = torch.randn(8, 5, dtype=torch.float64)
    layer(x).pow(2).mean().backward()
    return layer


def _reference_update(
    p: torch.Tensor, grad: torch.Tensor, weight_decay: float, trust: float, eps: float, exclude: bool
) -> torch.Tensor:
    """The LARS update direction from the formula, written out by hand."""
    if exclude:
        return grad.clone()
    g = grad + weight_decay * p
    p_norm, g_norm = p.norm().item(), g.norm().item()
    ratio = trust * p_norm / (g_norm + eps) if p_norm > 0 and g_norm > 0 else 1.0
    return g * ratio


def test_lars_single_step_matches_reference() -> None:
    layer = _linear_with_grads()
    lr, momentum, wd, trust, eps = 0.5, 0.9, 0.5, 0.02, 1e-8
    w0, b0 = layer.weight.detach().clone(), layer.bias.detach().clone()
    gw, gb = layer.weight.grad.clone(), layer.bias.grad.clone()  # type: ignore[union-attr]
    opt = LARS(param_groups(layer, lr, wd), lr=lr, momentum=momentum, trust_coefficient=trust, eps=eps)
    opt.step()
    # One step from a zero momentum buffer: v = update, p -= lr * v.
    expected_w = w0 - lr * _reference_update(w0, gw, wd, trust, eps, exclude=False)
    expected_b = b0 - lr * _reference_update(b0, gb, wd, trust, eps, exclude=True)
    torch.testing.assert_close(layer.weight.detach(), expected_w, atol=1e-6, rtol=0)
    torch.testing.assert_close(layer.bias.detach(), expected_b, atol=1e-6, rtol=0)
    # The test is sensitive to the weight decay and the trust ratio, not just close by accident.
    no_decay_w = w0 - lr * _reference_update(w0, gw, 0.0, trust, eps, exclude=False)
    unscaled_w = w0 - lr * (gw + wd * w0)
    assert (layer.weight.detach() - no_decay_w).abs().max() > 1e-4
    assert (layer.weight.detach() - unscaled_w).abs().max() > 1e-2


def test_lars_momentum_accumulates_over_two_steps() -> None:
    layer = _linear_with_grads()
    lr, momentum, trust = 0.1, 0.9, 0.01
    opt = LARS([layer.weight], lr=lr, momentum=momentum, trust_coefficient=trust)
    w0, g = layer.weight.detach().clone(), layer.weight.grad.clone()  # type: ignore[union-attr]
    opt.step()
    u1 = _reference_update(w0, g, 0.0, trust, 1e-8, exclude=False)
    w1 = w0 - lr * u1
    opt.step()  # same gradient, new weights
    u2 = _reference_update(w1, g, 0.0, trust, 1e-8, exclude=False)
    torch.testing.assert_close(layer.weight.detach(), w1 - lr * (momentum * u1 + u2), atol=1e-6, rtol=0)


def test_excluded_params_get_plain_momentum_sgd() -> None:
    """Biases/norms (and any group tagged lars_exclude) skip trust scaling and weight decay."""
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(4, 6), nn.LayerNorm(6)).double()
    model(torch.randn(10, 4, dtype=torch.float64)).pow(3).sum().backward()
    groups = param_groups(model, 0.5, weight_decay=0.1)
    excluded = next(g for g in groups if g["lars_exclude"])
    # Even a non-zero decay on the excluded group must be ignored.
    excluded["weight_decay"] = 0.1
    params = list(excluded["params"])  # type: ignore[call-overload]
    assert len(params) == 3  # linear bias, norm weight, norm bias
    before = [p.detach().clone() for p in params]
    grads = [p.grad.clone() for p in params]
    LARS(groups, lr=0.5, momentum=0.9, weight_decay=0.1).step()
    for p, p0, g in zip(params, before, grads, strict=True):
        torch.testing.assert_close(p.detach(), p0 - 0.5 * g, atol=1e-12, rtol=0)


def test_lars_exclude_flag_applies_to_matrices_too() -> None:
    layer = _linear_with_grads()
    w0, g = layer.weight.detach().clone(), layer.weight.grad.clone()  # type: ignore[union-attr]
    LARS([{"params": [layer.weight], "lars_exclude": True}], lr=0.2, weight_decay=0.5).step()
    torch.testing.assert_close(layer.weight.detach(), w0 - 0.2 * g, atol=1e-12, rtol=0)


def test_lars_zero_weights_use_trust_ratio_one() -> None:
    w = nn.Parameter(torch.zeros(3, 2, dtype=torch.float64))
    w.grad = torch.ones_like(w)
    LARS([w], lr=0.1).step()
    torch.testing.assert_close(w.detach(), torch.full((3, 2), -0.1, dtype=torch.float64))


def test_param_groups_tags_lars_exclude() -> None:
    groups = param_groups(nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3)), 0.1, 0.01)
    by_flag = {g["lars_exclude"]: g for g in groups}
    assert set(by_flag) == {False, True}
    assert by_flag[False]["weight_decay"] == 0.01
    assert by_flag[True]["weight_decay"] == 0.0


def test_lars_minimises_linear_regression() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(256, 16, generator=gen)
    y = x @ torch.randn(16, 1, generator=gen) + 0.5 + 0.01 * torch.randn(256, 1, generator=gen)
    torch.manual_seed(0)
    model = nn.Linear(16, 1)
    steps = 200
    opt = LARS(param_groups(model, 0.5, 1e-4), lr=0.5, trust_coefficient=0.02)
    initial = nn.functional.mse_loss(model(x), y).item()
    for step in range(steps):
        set_lr(opt, warmup_cosine(step, steps, 10))
        loss = nn.functional.mse_loss(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    final = nn.functional.mse_loss(model(x), y).item()
    assert final < 0.1 * initial, (initial, final)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"lr": 0.0},
        {"lr": 0.1, "momentum": 1.0},
        {"lr": 0.1, "momentum": -0.1},
        {"lr": 0.1, "weight_decay": -1.0},
        {"lr": 0.1, "trust_coefficient": 0.0},
        {"lr": 0.1, "eps": -1.0},
    ],
)
def test_lars_rejects_invalid_arguments(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be"):
        LARS([nn.Parameter(torch.zeros(2, 2))], **kwargs)


@pytest.mark.parametrize(
    ("name", "cls"), [("adamw", torch.optim.AdamW), ("sgd", torch.optim.SGD), ("lars", LARS)]
)
def test_build_optimizer_classes_and_group_lr(name: str, cls: type) -> None:
    assert name in OPTIMIZERS
    model = nn.Linear(4, 2)
    opt = build_optimizer(name, param_groups(model, 0.05, 0.01), lr=1.0, momentum=0.8)
    assert type(opt) is cls
    assert [g["lr"] for g in opt.param_groups] == [0.05, 0.05]
    assert [g["weight_decay"] for g in opt.param_groups] == [0.01, 0.0]
    if name != "adamw":
        assert all(g["momentum"] == 0.8 for g in opt.param_groups)
    assert set_lr(opt, 0.5) == pytest.approx(0.025)


def test_build_optimizer_unknown_name() -> None:
    with pytest.raises(ValueError, match="adamw, sgd, lars"):
        build_optimizer("adam", param_groups(nn.Linear(2, 2), 0.1, 0.0), lr=0.1)


def test_warmup_cosine_shape() -> None:
    total, warmup = 100, 10
    factors = [warmup_cosine(s, total, warmup) for s in range(total)]
    assert factors[0] == pytest.approx(1 / warmup)
    assert factors[warmup - 1] == pytest.approx(1.0)
    assert factors[warmup] == pytest.approx(1.0)
    assert all(a < b for a, b in pairwise(factors[:warmup]))
    assert all(b <= a for a, b in pairwise(factors[warmup:]))
    assert factors[-1] < 1e-2
    assert warmup_cosine(total, total, warmup) == pytest.approx(0.0)
