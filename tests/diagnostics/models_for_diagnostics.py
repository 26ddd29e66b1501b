"""Small float64 models shared by the diagnostics tests (not a test module: no ``test_`` prefix)."""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call, jacrev

from lit_memo.diagnostics import resolve_params
from lit_memo.models import OneHiddenLayerNet
from lit_memo.modules import ShallowNetModule


def mlp() -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 6), nn.Softplus(), nn.Linear(6, 3)).double()
    return model, torch.randn(6, 5, dtype=torch.float64)


def pairwise_net() -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(1)
    return OneHiddenLayerNet(5, 8, 2, pairwise=True).double(), torch.randn(7, 5, dtype=torch.float64)


def mirrored_module() -> tuple[nn.Module, torch.Tensor]:
    """The ``ours`` regime as the callbacks see it: a LightningModule, mirrored twins, pairwise output."""
    torch.manual_seed(2)
    module = ShallowNetModule(width=6, input_shape=(4,), num_outputs=1, regime="ours").double()
    return module, torch.randn(9, 4, dtype=torch.float64)


def bn_cnn() -> tuple[nn.Module, torch.Tensor]:
    """Conv + BatchNorm with non-trivial running statistics, left in train mode."""
    torch.manual_seed(3)
    model = nn.Sequential(
        nn.Conv2d(2, 4, 3), nn.BatchNorm2d(4), nn.ReLU(),
        nn.Conv2d(4, 4, 3, stride=2), nn.BatchNorm2d(4), nn.Tanh(),
        nn.Flatten(), nn.Linear(4 * 2 * 2, 3),
    ).double()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(8, 2, 7, 7, dtype=torch.float64) * 2 + 1)
    return model.train(), torch.randn(5, 2, 7, 7, dtype=torch.float64)


MODELS = {"mlp": mlp, "pairwise": pairwise_net, "mirrored_module": mirrored_module, "bn_cnn": bn_cnn}


def explicit_jacobian(model: nn.Module, x: torch.Tensor, params=None) -> torch.Tensor:
    """The whole J (k*C x #params) with one jacrev over the batch, in eval mode."""
    chosen = {n: p.detach() for n, p in resolve_params(model, params).items()}
    rest = {n: p.detach() for n, p in model.named_parameters() if n not in chosen}
    was_training = model.training
    model.eval()
    try:
        jac = jacrev(lambda p: functional_call(model, (p, rest), (x,)).reshape(-1))(chosen)
    finally:
        model.train(was_training)
    return torch.cat([j.reshape(j.shape[0], -1) for j in jac.values()], dim=1)
