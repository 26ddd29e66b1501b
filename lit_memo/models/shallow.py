"""One-hidden-layer network ``f(x) = sum_i v_i sigma(w_i^T x)`` of Zhang et al. (2021), Sec. 4."""

from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import nn

from lit_memo.models.layers import PairwiseLinear, check_even, lecun_normal_, make_activation


class OneHiddenLayerNet(nn.Module):
    """Hidden layer ``hidden`` (weights W, ``width x input_dim``), activation, output layer ``output``.

    With ``pairwise=True`` the output layer is :class:`PairwiseLinear` (trains v of width/2, the
    second half's outer weights are -v); otherwise a plain bias-free ``nn.Linear``. Inputs of any
    shape are flattened. Weights start LeCun normal (variance 1/fan_in) in both cases.
    """

    def __init__(
        self,
        input_dim: int,
        width: int,
        output_dim: int = 1,
        activation: str = "tanh",
        pairwise: bool = False,
        bias: bool = False,
    ) -> None:
        super().__init__()
        if input_dim < 1 or width < 1 or output_dim < 1:
            raise ValueError(f"input_dim, width and output_dim must be >= 1, got {input_dim}, {width}, {output_dim}")
        if pairwise:
            check_even(width, "hidden")
        self.hidden = nn.Linear(input_dim, width, bias=bias)
        self.act = make_activation(activation)
        self.output = PairwiseLinear(width, output_dim) if pairwise else nn.Linear(width, output_dim, bias=False)
        lecun_normal_(self.hidden.weight)
        if bias:
            nn.init.zeros_(self.hidden.bias)
        if not pairwise:
            lecun_normal_(self.output.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output(self.act(self.hidden(x.flatten(1))))


# -- the net's squared loss and its gradient written out (no autograd) --------------------------
# Used by ShallowNetModule(explicit_gradient=True) and the sweep runner's batched groups, for G
# nets of the same shape at once (stacked weights).
def _tanh_derivative_(z: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    # 1 - h^2, over h (one pass); the 1 on h's device: a CPU scalar tensor may not join a GPU ternary op
    return torch.addcmul(h.new_ones(()), h, h, value=-1, out=h)


# activation: (forward, derivative). The forward may work in place on z (tanh, relu); the
# derivative phi'(z) may overwrite z or h: both are dead by then (see loss_and_grads)
EXPLICIT_ACTIVATIONS: dict[str, tuple[Callable[[torch.Tensor], torch.Tensor], Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]] = {
    "tanh": (torch.tanh_, _tanh_derivative_),
    "relu": (torch.relu_, lambda z, h: h.sign_()),  # h = relu(z) >= 0: sign(h) = 1[z > 0]
    "softplus": (torch.nn.functional.softplus, lambda z, h: z.sigmoid_()),
    "square": (torch.square, lambda z, h: z.mul_(2)),
}


def loss_and_grads(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, v: torch.Tensor, activation: str, pairwise: bool,
                   scratch: Optional[torch.Tensor] = None):
    """Squared loss ``mean((f - y)^2)`` of each member and its gradients w.r.t. W and v.

    x: (n, d); y: (n, out); w: (G, m, d); v: (G, out, m/2) when pairwise (f = (phi_1 - phi_2) v^T),
    else (G, out, m); scratch: a (G, n, m) buffer for the activations, reused step after step.
    Returns loss (G,), grad_w, grad_v and the outputs f (G, n, out). No autograd: the inputs
    must not require grad.

    Written for memory traffic: at Fig. 4 sizes (n = 1000, m = 400) a step is bound by passes
    over the (n, m) activations, not by FLOPs. So they live in one buffer that stays in cache
    (tanh and its derivative in place) and are never copied: the pairwise output is
    ``h @ [v, -v]``, and with one output the backward's ``(g_out v) * phi'(z)`` is folded into the
    last matmul, ``grad_w = v * (phi'(z)^T (g_out * x))``. About 6 passes instead of autograd's ~14.
    """
    G, m, _ = w.shape
    n, out = y.shape
    z = torch.empty(G, n, m, dtype=x.dtype, device=x.device) if scratch is None else scratch
    torch.bmm(x.expand(G, n, -1), w.transpose(1, 2), out=z)
    forward, derivative_ = EXPLICIT_ACTIVATIONS[activation]
    h = forward(z)
    vv = torch.cat([v, -v], dim=-1) if pairwise else v  # (G, out, m)
    f = torch.bmm(h, vv.transpose(1, 2))  # (G, n, out)
    residual = f - y
    loss = residual.square().mean(dim=(1, 2))
    g_out = residual.mul_(2.0 / (n * out))
    grad_vv = torch.bmm(g_out.transpose(1, 2), h)  # (G, out, m)
    grad_v = grad_vv[..., : m // 2] - grad_vv[..., m // 2:] if pairwise else grad_vv
    deriv = derivative_(z, h)  # (G, n, m), phi'(z)
    if out == 1:  # (G, d, n) @ (G, n, m): the cheap orientation of the thin matmul on a CPU
        grad_w = torch.bmm((g_out * x).transpose(1, 2), deriv).mul_(vv).transpose(1, 2)
    else:
        grad_w = torch.bmm(torch.bmm(g_out, vv).mul_(deriv).transpose(1, 2), x.expand(G, n, -1))
    return loss, grad_w, grad_v, f
