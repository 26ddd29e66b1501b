"""``bf16-true`` / ``16-true``: constrained groups that sit on their sets' boundaries, at the precision's rounding,
read ``constraint/<group>/active`` = 0 (the projection checks with the dtype's tolerance)."""

from __future__ import annotations

import pytest
import torch

from lit_memo.callbacks import ConstraintBoundaryCallback
from lit_memo.data import SyntheticDataModule
from lit_memo.modules import ShallowNetModule


@pytest.mark.parametrize("precision,dtype", [("bf16-true", torch.bfloat16), ("16-true", torch.float16)])
def test_half_groups_on_their_boundaries_are_not_reported_active(precision, dtype, make_trainer):
    torch.manual_seed(0)
    data = SyntheticDataModule(n=32, d=6, seed=1)
    # lr 1e-30: every update rounds away in half precision, so the weights stay where the start-up projection put them
    module = ShallowNetModule(input_shape=data.input_shape, width=12, regime="ours", radius=1.0, zeta=0.3, gamma=1.5,
                              lr_hidden=1e-30, lr_outer=1e-30)
    module.capture_anchors_()  # the ball's centre, then weights far outside both sets
    with torch.no_grad():
        for p in module.hidden_parameters():
            p.add_(torch.randn_like(p))
        (v,) = module.outer_parameters()
        v.mul_(torch.linspace(0.1, 5.0, v.numel()).view_as(v))
    trainer = make_trainer(max_steps=6, precision=precision)
    trainer.fit(module, datamodule=data)
    assert module.net.hidden.weight.dtype == dtype
    metrics = ConstraintBoundaryCallback().measure(trainer, module)
    tol = 2 * torch.finfo(dtype).eps
    assert abs(metrics["constraint/hidden/ratio"] - 1) <= tol  # on the sphere, up to the dtype's rounding
    assert metrics["constraint/outer/spread"] <= 1.5 * (1 + tol)
    assert metrics["constraint/hidden/active"] == 0 and metrics["constraint/outer/active"] == 0
    assert module.projection_stats == {"hidden": (6, 0), "outer": (6, 0)}
