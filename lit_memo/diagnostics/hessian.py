"""Extreme Hessian eigenvalues of a training loss: the second-order stationarity certificate of
Ge, Wang, Zhao (2019) (perturbed GD reaches points with ``lambda_min(H) >= -sqrt(rho eps)``)."""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn
from torch.func import functional_call, grad, vjp

from lit_memo.diagnostics.functional import ParamSpec, eval_mode, split_params
from lit_memo.diagnostics.lanczos import lanczos_extreme_eigenvalues

LossFn = Callable[..., torch.Tensor]


def hessian_vector_product(model: nn.Module, loss_fn: LossFn, batch: Sequence[torch.Tensor],
                           params: ParamSpec = None) -> tuple[Callable[[torch.Tensor], torch.Tensor], int]:
    """``(v -> H v, dim)`` on flat vectors, H the Hessian of ``loss_fn(model(x), *targets)``
    w.r.t. the chosen parameters at their current values (reverse-over-reverse: vjp of grad).

    Call the product inside :func:`eval_mode` (as :func:`hessian_extreme_eigenvalues` does)."""
    x, *targets = batch
    chosen, rest = split_params(model, params)
    names = list(chosen)
    shapes = [chosen[n].shape for n in names]
    sizes = [chosen[n].numel() for n in names]

    def loss(p: dict[str, torch.Tensor]) -> torch.Tensor:
        return loss_fn(functional_call(model, (p, rest), (x,)), *targets)

    # reverse-over-reverse: H is symmetric, so the vjp of the gradient is H v; the graph of the
    # gradient is built once and reused by every product (forward-over-reverse, jvp of grad,
    # rebuilds it each time and lacks forward-AD formulas for some backward ops, e.g. slicing's)
    _, vjp_fn = vjp(grad(loss), chosen)

    def hvp(v: torch.Tensor) -> torch.Tensor:
        parts = torch.split(v, sizes)
        cotangent = {n: part.reshape(s).to(chosen[n].dtype) for n, part, s in zip(names, parts, shapes)}
        (hv,) = vjp_fn(cotangent)
        return torch.cat([hv[n].reshape(-1) for n in names])

    return hvp, sum(sizes)


def hessian_extreme_eigenvalues(model: nn.Module, loss_fn: LossFn, batch: Sequence[torch.Tensor],
                                params: ParamSpec = None, *, num_iter: int = 30, seed: int = 0) -> tuple[float, float]:
    """(lambda_min, lambda_max) of the loss Hessian on ``batch = (x, *targets)``, by Lanczos.

    The model is evaluated in eval mode (BatchNorm on running statistics, no dropout), so the
    loss is a deterministic function of the weights and no buffer changes.
    """
    with eval_mode(model), torch.enable_grad():
        hvp, dim = hessian_vector_product(model, loss_fn, batch, params)
        device = batch[0].device
        return lanczos_extreme_eigenvalues(hvp, dim, num_iter, seed=seed, device=device)
