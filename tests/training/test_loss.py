import math

import pytest
import torch
import torch.nn.functional as F

from training.loss import NTXentLoss


def reference_nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR eq. 1 written as loops: every one of the 2N views is an anchor, its positive is the
    other view of its image, its negatives are the 2N - 2 remaining views."""
    z = F.normalize(torch.cat([z1, z2]), dim=1).double()
    n2 = z.shape[0]
    n = n2 // 2
    total = 0.0
    for i in range(n2):
        j = (i + n) % n2
        sim = lambda a, b: float(z[a] @ z[b]) / temperature  # noqa: E731
        denominator = sum(math.exp(sim(i, m)) for m in range(n2) if m != i)
        total += -math.log(math.exp(sim(i, j)) / denominator)
    return torch.tensor(total / n2, dtype=torch.float64)


@pytest.mark.parametrize("n,d,tau", [(2, 3, 0.5), (5, 8, 0.2), (8, 16, 0.07)])
def test_matches_the_hand_written_loop(n: int, d: int, tau: float) -> None:
    torch.manual_seed(n * d)
    z1, z2 = torch.randn(n, d), torch.randn(n, d)
    got = NTXentLoss(tau)(z1, z2)
    torch.testing.assert_close(got.double(), reference_nt_xent(z1, z2, tau), rtol=1e-5, atol=1e-5)


def test_uses_all_2n_minus_2_negatives_in_both_directions() -> None:
    # Perfectly aligned pairs: the loss is the log of (1 + (2N-2) e^{(s_neg - 1)/τ}) per anchor,
    # i.e. it still counts same-view negatives. The cross-view-only variant would give a different value.
    n, tau = 4, 0.5
    z = torch.eye(n)
    loss = NTXentLoss(tau)(z, z.clone())
    expected = math.log(1 + (2 * n - 2) * math.exp(-1 / tau))
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_symmetric_in_the_two_views() -> None:
    z1, z2 = torch.randn(6, 4), torch.randn(6, 4)
    loss = NTXentLoss(0.3)
    torch.testing.assert_close(loss(z1, z2), loss(z2, z1))


def test_gradients_flow_and_bad_input_is_refused() -> None:
    z1 = torch.randn(4, 8, requires_grad=True)
    NTXentLoss()(z1, torch.randn(4, 8)).backward()
    assert z1.grad is not None and torch.isfinite(z1.grad).all()
    with pytest.raises(ValueError):
        NTXentLoss(0)
    with pytest.raises(ValueError, match="at least 2"):
        NTXentLoss()(torch.randn(1, 4), torch.randn(1, 4))
    with pytest.raises(ValueError, match="one shape"):
        NTXentLoss()(torch.randn(3, 4), torch.randn(2, 4))
