"""LightningModule for the one-hidden-layer network (Zhang et al. 2021 Sec. 5.1, Fig. 4)."""

from __future__ import annotations

import math

import torch
from torch import nn

from lit_memo.models.shallow import OneHiddenLayerNet, loss_and_grads
from lit_memo.modules.base import MemorizationModule


class ShallowNetModule(MemorizationModule):
    """``f(x) = sum_i v_i sigma(w_i^T x)``; the hidden weights W are the ball-constrained group.

    Args:
        width: number of hidden units m (even for the ``ours`` regime).
        activation: tanh, relu, softplus or square.
        bias: hidden-layer bias (Zhang et al. use none).
        explicit_gradient: full-batch GD steps (``steps_per_batch`` > 1) compute the squared loss
            and its gradient with the hand-written in-place formula (``models.shallow.loss_and_grads``,
            the one the sweep runner's batched groups use) instead of autograd; the optimizer,
            projections and logging are unchanged. Equal to autograd to float rounding; through
            train.py 2.1x the plain eager loop at n = 1000, width 400 and 1.4x on synthetic_narrow on
            one CPU core (benchmarks/bench_compile.py). Off by default (our choice) so a run stays
            bitwise what autograd gives. DDP, a precision other than 32-true, a profiler or a
            per-step hook take autograd's step instead, with a warning.
        **kwargs: the shared options of :class:`MemorizationModule` (regime, radius, lrs, ...).
    """

    def __init__(self, width: int = 400, activation: str = "tanh", bias: bool = False,
                 explicit_gradient: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.save_hyperparameters(ignore=["optimizer", "lr_scheduler"])
        self.explicit_gradient = explicit_gradient
        if explicit_gradient:
            why = self._explicit_gradient_blocker(bias)
            if why:
                raise ValueError(f"explicit_gradient: {why}; set model.init_args.explicit_gradient=false")
        self.net = OneHiddenLayerNet(
            input_dim=math.prod(self.input_shape),
            width=width,
            output_dim=self.num_outputs,
            activation=activation,
            pairwise=self.regime.mirrored,
            bias=bias,
        )
        self.init_network_()

    def hidden_parameters(self) -> list[nn.Parameter]:
        return list(self.net.hidden.parameters())

    def outer_parameters(self) -> list[nn.Parameter]:
        return [self.net.output.weight]

    def _explicit_gradient_blocker(self, bias: bool) -> str:
        if self.task != "regression":
            return "the hand-written gradient is the squared loss's (task regression), not cross-entropy's"
        if bias:
            return "the hand-written gradient has no hidden bias (bias: false, as Zhang et al.)"
        if self.steps_per_batch == 1:
            return "it replaces autograd in the full-batch GD loop: set model.init_args.steps_per_batch > 1"
        if self.compile_loss:
            return "it replaces the compiled forward and loss: choose one of compile and explicit_gradient"
        return ""

    @torch.no_grad()
    def explicit_forward_backward_(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The squared loss and ``.grad`` of W and v without autograd; returns (out, loss)."""
        w, v = self.net.hidden.weight.detach(), self.net.output.weight.detach()  # no autograd dispatch per op
        scratch = getattr(self, "_explicit_scratch", None)
        if scratch is None or scratch.shape[1:] != (len(x), w.shape[0]) or scratch.dtype != x.dtype or scratch.device != x.device:
            scratch = self._explicit_scratch = torch.empty(1, len(x), w.shape[0], dtype=x.dtype, device=x.device)
        loss, grad_w, grad_v, out = loss_and_grads(x.flatten(1), y.reshape(len(y), -1).to(x.dtype), w[None], v[None],
                                                   self.hparams.activation, self.regime.mirrored, scratch)
        self.net.hidden.weight.grad, self.net.output.weight.grad = grad_w[0].contiguous(), grad_v[0].contiguous()
        return out[0], loss[0]
