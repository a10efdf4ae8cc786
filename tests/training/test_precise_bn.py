import torch
from torch import nn

from training.precise_bn import recompute_batchnorm_stats


def test_running_stats_become_the_exact_average_over_the_batches() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4, momentum=0.01)).eval()
    batches = [torch.randn(5, 3, 6, 6) * 3 + 2 for _ in range(4)]
    seen = recompute_batchnorm_stats(model, batches, torch.device("cpu"))
    assert seen == 20 and not model.training and model[1].momentum == 0.01
    with torch.no_grad():
        features = torch.stack([model[0](b) for b in batches])  # (4, 5, 4, 6, 6)
    per_batch_mean = features.mean(dim=(1, 3, 4))  # (4, C)
    torch.testing.assert_close(model[1].running_mean, per_batch_mean.mean(0), rtol=1e-4, atol=1e-5)
    per_batch_var = features.transpose(1, 2).reshape(4, 4, -1).var(dim=2, unbiased=True)  # (4, C)
    torch.testing.assert_close(model[1].running_var, per_batch_var.mean(0), rtol=1e-4, atol=1e-5)
