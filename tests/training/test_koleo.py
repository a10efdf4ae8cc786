import copy
import math

import pytest
import torch
import torch.nn.functional as F

from encoder import Encoder, EncoderConfig
from training.byol import BYOL
from training.koleo import KoLeoLoss
from training.moco import MoCo
from training.simclr import SimCLR


def reference_koleo(z1: torch.Tensor, z2: torch.Tensor | None, eps: float = 1e-8) -> float:
    """SSCD's entropy term written as loops: for every embedding, the distance to the nearest
    embedding of another image (with two views: either view of every other image)."""
    views = [F.normalize(z, dim=1).double() for z in (z1, z2) if z is not None]
    n = views[0].shape[0]
    total, count = 0.0, 0
    for v in range(len(views)):
        for i in range(n):
            nearest = min(
                float((views[v][i] - views[w][j]).norm())
                for w in range(len(views))
                for j in range(n)
                if j != i
            )
            total += -math.log(nearest + eps)
            count += 1
    return total / count


@pytest.mark.parametrize("n,d,two_views", [(2, 3, False), (5, 8, False), (3, 4, True), (8, 16, True)])
def test_matches_the_hand_written_loop(n: int, d: int, two_views: bool) -> None:
    torch.manual_seed(n * d)
    z1, z2 = torch.randn(n, d), torch.randn(n, d) if two_views else None
    got = KoLeoLoss()(z1, z2)
    assert got.item() == pytest.approx(reference_koleo(z1, z2), rel=1e-5, abs=1e-6)


def test_the_other_view_of_an_image_is_no_neighbour() -> None:
    z = torch.randn(6, 5)
    near_copy = z + 1e-4 * torch.randn(6, 5)  # each image's second view almost equals its first
    with_views = KoLeoLoss()(z, near_copy)
    as_one_set = KoLeoLoss()(torch.cat([z, near_copy]))  # here the copies are neighbours
    assert with_views.item() < 2 and as_one_set.item() > 5


def test_gradient_pushes_nearest_neighbours_apart() -> None:
    torch.manual_seed(0)
    z = F.normalize(torch.randn(10, 4), dim=1)
    z[1] = F.normalize(z[0] + 0.05 * torch.randn(4), dim=0)  # 0 and 1: a crowded pair
    z.requires_grad_(True)
    KoLeoLoss()(z).backward()
    assert z.grad is not None
    step = z.detach() - 0.01 * z.grad  # one gradient step
    before = (z[0] - z[1]).norm().item()
    after = (F.normalize(step[0], dim=0) - F.normalize(step[1], dim=0)).norm().item()
    assert after > before
    # the gradient of z0 points away from z1 (minus the part along z0, which normalisation removes)
    assert float(-z.grad[0] @ (z[0] - z[1]).detach()) > 0


def test_identical_embeddings_give_a_finite_loss_and_bad_input_is_refused() -> None:
    z = torch.ones(4, 3, requires_grad=True)
    loss = KoLeoLoss()(z)
    loss.backward()
    assert torch.isfinite(loss) and loss.item() == pytest.approx(-math.log(1e-8), rel=1e-3)
    assert z.grad is not None and torch.isfinite(z.grad).all()
    with pytest.raises(ValueError, match="at least 2"):
        KoLeoLoss()(torch.randn(1, 4))
    with pytest.raises(ValueError, match="one shape"):
        KoLeoLoss()(torch.randn(3, 4), torch.randn(2, 4))
    with pytest.raises(ValueError):
        KoLeoLoss(eps=0)


def _method(name: str, weight: float) -> torch.nn.Module:
    torch.manual_seed(0)
    encoder = Encoder(EncoderConfig(arch="mobilenet_v3_small", image_size=64))
    if name == "simclr":
        return SimCLR(encoder, 32, 8, koleo_weight=weight)
    if name == "moco":
        return MoCo(encoder, 32, 8, queue_size=16, koleo_weight=weight)
    return BYOL(encoder, 32, 8, koleo_weight=weight)


@pytest.mark.parametrize("name", ["simclr", "moco", "byol"])
def test_each_method_adds_the_weighted_term_on_the_encoder_embeddings(name: str) -> None:
    plain, regularised = _method(name, 0.0), _method(name, 2.5)
    regularised.load_state_dict(copy.deepcopy(plain.state_dict()))
    torch.manual_seed(1)
    view1, view2 = torch.randn(4, 3, 64, 64), torch.randn(4, 3, 64, 64)
    base = plain(view1, view2)
    total = regularised(view1, view2)
    with torch.no_grad():
        h = plain.encoder(torch.cat([view1, view2]))  # the embeddings of both views, one forward
    expected = base + 2.5 * KoLeoLoss()(h[:4], h[4:])
    torch.testing.assert_close(total, expected, rtol=1e-4, atol=1e-4)
    # weight 0: the loss of the method alone, the same value as before the regulariser existed
    torch.testing.assert_close(_method(name, 0.0)(view1, view2), base)
    with pytest.raises(ValueError, match="koleo_weight"):
        _method(name, -1.0)
