"""The projection hook runs after every real optimizer step and only then, whatever drives the step."""

from __future__ import annotations

import torch

import train
from conftest import assert_inside_and_fixed_point
from lit_memo.data import SyntheticDataModule
from lit_memo.modules import ShallowNetModule

TIGHT = dict(regime="ours", radius=0.05, zeta=0.05, gamma=2.0, lr_hidden=0.5, lr_outer=0.5)


def make(**kw):
    torch.manual_seed(0)
    data = SyntheticDataModule(n=64, d=6, full_batch=False, batch_size=16, seed=1)
    module = ShallowNetModule(input_shape=data.input_shape, width=12, **{**TIGHT, **kw})
    return module, data


def projected_steps(module) -> int:
    return sum(steps for steps, _ in module.projection_stats.values()) // len(module.constraint_groups())


def test_gradient_accumulation_projects_once_per_optimizer_step(make_trainer):
    module, data = make()
    trainer = make_trainer(max_steps=6, accumulate_grad_batches=2)
    trainer.fit(module, datamodule=data)
    assert trainer.global_step == 6
    assert projected_steps(module) == 6  # not 12: micro-batches do not step
    assert module.projection_stats["hidden"][1] > 0  # the ball was active
    assert_inside_and_fixed_point(module)


def test_optimizer_from_yaml_key(tmp_path):
    cli = train.build_cli([
        "--config", "synthetic_narrow.yaml", "--optimizer=torch.optim.Adam", "--optimizer.lr=0.05",
        "--model.init_args.radius=0.05", "--model.init_args.steps_per_batch=1", "--trainer.max_steps=5",
        "--trainer.logger=false", "--trainer.enable_progress_bar=false", "--trainer.callbacks=[]",
        f"--output_dir={tmp_path}"])  # the optimizer alone: no diagnostics
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    optimizer = cli.trainer.optimizers[0]
    assert isinstance(optimizer, torch.optim.Adam)
    # the YAML optimizer is built over the module's groups, so lr_hidden / lr_outer still apply
    assert [g["lr"] for g in optimizer.param_groups] == [cli.model.lr_hidden, cli.model.lr_outer]
    assert projected_steps(cli.model) == 5
    assert_inside_and_fixed_point(cli.model)


def test_manual_optimization_multi_step(make_trainer):
    module, data = make(steps_per_batch=3)
    assert not module.automatic_optimization
    trainer = make_trainer(max_steps=7)
    trainer.fit(module, datamodule=data)
    assert trainer.global_step == 7  # capped exactly, although 3 does not divide 7
    assert projected_steps(module) == 7
    assert_inside_and_fixed_point(module)


class SkippingModule(ShallowNetModule):
    """Skips every second step: Lightning's documented way is to return None from training_step."""

    def training_step(self, batch, batch_idx):
        return None if batch_idx % 2 else super().training_step(batch, batch_idx)


def test_skipped_training_steps_keep_the_constraint(make_trainer):
    # Lightning still calls optimizer.step() (a no-op: no gradients) for a None loss, so the
    # hook runs as often as the trainer counts steps, and the weights stay in their sets
    torch.manual_seed(0)
    data = SyntheticDataModule(n=64, d=6, full_batch=False, batch_size=16, seed=1)
    module = SkippingModule(input_shape=data.input_shape, width=12, **TIGHT)
    trainer = make_trainer(max_epochs=2)
    trainer.fit(module, datamodule=data)
    assert projected_steps(module) == trainer.global_step == 8
    assert_inside_and_fixed_point(module)


def test_grad_scaler_skipped_step_does_not_project(make_trainer):
    """AMP's GradScaler skips optimizer.step() on inf gradients; the projection must not run."""
    module, data = make()
    trainer = make_trainer(max_steps=1)
    trainer.fit(module, datamodule=data)
    module._register_projection_hooks()  # fit removed them; put them back on the same optimizer
    optimizer = trainer.optimizers[0]
    scaler = torch.amp.GradScaler("cpu")
    before = projected_steps(module)
    params = [p.detach().clone() for p in module.parameters()]
    scaler.scale(module(torch.randn(4, 6)).sum() * float("inf")).backward()  # inf gradients
    scaler.step(optimizer)
    scaler.update()
    assert projected_steps(module) == before
    assert all(torch.equal(a, b) for a, b in zip(params, module.parameters()))
    optimizer.zero_grad()
    scaler.scale(module(torch.randn(4, 6)).sum()).backward()
    scaler.step(optimizer)
    assert projected_steps(module) == before + 1
    module._remove_projection_hooks()
    assert_inside_and_fixed_point(module)


def test_anchor_is_the_initialisation_and_training_starts_inside(make_trainer):
    module, data = make()
    init = [p.detach().clone() for p in module.hidden_parameters()]
    make_trainer(max_steps=3).fit(module, datamodule=data)
    assert all(torch.equal(a, b) for a, b in zip(module.anchors_for("hidden"), init))
    assert "outer" not in module.constraint_anchors  # V has no centre


def test_regular_has_no_constraint_and_constrained_regular_only_the_ball():
    module, _ = make(regime="regular")
    assert module.constraint_groups() == {}
    module, _ = make(regime="constrained_regular")
    assert list(module.constraint_groups()) == ["hidden"]


def test_projection_hook_reads_nothing_back_to_the_host(monkeypatch):
    """Issue 9: with the sync-free projection, optimizer steps (hook included) never copy a value to
    the host, and the result and the counts equal the host-checked projection's."""
    from sync_check import OpRecorder
    from reuse_thirdparty import ThirdPartyClassifier, loader, make_net

    reads = []
    for name in ("item", "__bool__", "__float__", "__int__", "cpu", "tolist", "numpy"):
        original = getattr(torch.Tensor, name)
        monkeypatch.setattr(torch.Tensor, name, lambda self, *a, _o=original, _n=name, **k: (reads.append(_n), _o(self, *a, **k))[1])
    runs = {}
    for sync_free in (True, False):
        torch.manual_seed(0)
        module = ThirdPartyClassifier(make_net(), radius=0.02, zeta=0.3, gamma=1.5)
        module.projection_sync_free = sync_free
        module.capture_anchors_()
        optimizer = torch.optim.SGD(module.parameters(), lr=0.5, momentum=0.9)
        module._register_projection_hooks([optimizer])
        batches = list(loader())  # a DataLoader draws its seed with .item(): not the projection's
        reads.clear()
        with OpRecorder() as rec:
            for x, y in batches:
                optimizer.zero_grad()
                module.criterion(module(x), y).backward()
                optimizer.step()
        runs[sync_free] = module, rec.syncs() + reads
    (fast, fast_syncs), (exact, exact_syncs) = runs[True], runs[False]
    assert fast_syncs == [] and exact_syncs  # the check does see the host-checked path's reads
    assert fast.projection_stats == exact.projection_stats
    assert fast.projection_stats["hidden"] == (6, 6) and fast.projection_stats["outer"][1] > 0
    for a, b in zip(fast.parameters(), exact.parameters()):
        assert torch.equal(a, b)
