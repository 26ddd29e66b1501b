"""``bf16-true``: constrained groups that sit on their sets' boundaries, at the precision's rounding,
read ``constraint/<group>/active`` = 0 (the projection checks with the dtype's tolerance)."""

from __future__ import annotations

import torch

from lit_memo.callbacks import ConstraintBoundaryCallback
from lit_memo.data import SyntheticDataModule
from lit_memo.modules import ShallowNetModule


def test_bf16_groups_on_their_boundaries_are_not_reported_active(make_trainer):
    torch.manual_seed(0)
    data = SyntheticDataModule(n=32, d=6, seed=1)
    # lr 1e-30: every update rounds away in bfloat16, so the weights stay where the start-up projection put them
    module = ShallowNetModule(input_shape=data.input_shape, width=12, regime="ours", radius=1.0, zeta=0.3, gamma=1.5,
                              lr_hidden=1e-30, lr_outer=1e-30)
    module.capture_anchors_()  # the ball's centre, then weights far outside both sets
    with torch.no_grad():
        for p in module.hidden_parameters():
            p.add_(torch.randn_like(p))
        (v,) = module.outer_parameters()
        v.mul_(torch.linspace(0.1, 5.0, v.numel()).view_as(v))
    trainer = make_trainer(max_steps=6, precision="bf16-true")
    trainer.fit(module, datamodule=data)
    assert module.net.hidden.weight.dtype == torch.bfloat16
    metrics = ConstraintBoundaryCallback().measure(trainer, module)
    assert abs(metrics["constraint/hidden/ratio"] - 1) < 0.02  # on the sphere (bfloat16: eps = 2^-7)
    assert metrics["constraint/outer/spread"] <= 1.5 * (1 + 0.02)
    assert metrics["constraint/hidden/active"] == 0 and metrics["constraint/outer/active"] == 0
    assert module.projection_stats == {"hidden": (6, 0), "outer": (6, 0)}
