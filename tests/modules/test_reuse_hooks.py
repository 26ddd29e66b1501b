"""Issue 7 point 2: the projection cannot be switched off by the subclass. Overriding the Lightning
hooks without ``super()``, or putting the mixins after ``pl.LightningModule`` in the bases, still
projects after every step, captures the anchors once and keeps them across a checkpoint."""

from __future__ import annotations

import pytorch_lightning as pl
import pytest
import torch

from conftest import assert_inside_and_fixed_point
from lit_memo import MirroredInitMixin, ProjectedOptimizerMixin
from reuse_thirdparty import Classifier, ThirdPartyClassifier, loader, make_net, projected_steps


class NoSuper(ThirdPartyClassifier):
    """Overrides every hook the mixin uses, calling super() in none of them."""

    def on_fit_start(self):
        self.fit_starts += 1

    def on_fit_end(self):
        pass

    def on_save_checkpoint(self, checkpoint):
        checkpoint["mine"] = 1

    def on_load_checkpoint(self, checkpoint):
        self.loaded_mine = checkpoint["mine"]


class LightningFirst(pl.LightningModule, MirroredInitMixin, ProjectedOptimizerMixin):
    """The mixins after pl.LightningModule: Lightning's own (empty) hooks come first in the MRO."""

    def __init__(self, net, lr: float = 0.05, radius: float = 0.05, zeta: float = 0.05, gamma: float = 2.0):
        super().__init__()
        self.save_hyperparameters(logger=False)
        self._build(net)

    _build = Classifier._build
    constraint_groups = Classifier.constraint_groups
    forward = Classifier.forward
    training_step = Classifier.training_step
    configure_optimizers = Classifier.configure_optimizers


class GrandChild(NoSuper):
    """A second level of overrides, this one calling super()."""

    def on_fit_start(self):
        super().on_fit_start()


@pytest.mark.parametrize("cls", [NoSuper, LightningFirst, GrandChild])
def test_projection_runs_whatever_the_hooks_and_base_order(make_trainer, tmp_path, cls):
    assert LightningFirst.__mro__.index(pl.LightningModule) < LightningFirst.__mro__.index(ProjectedOptimizerMixin)
    torch.manual_seed(0)
    module = cls(make_net(), lr=0.1)  # r = 0.05 with Adam at 0.1: the ball binds at every step
    init = module.net.hidden.weight.detach().clone()
    trainer = make_trainer(max_steps=5)
    trainer.fit(module, loader())
    assert projected_steps(module) == {"hidden": 5, "outer": 5}
    assert module.projection_stats["hidden"][1] == 5
    assert torch.equal(module.anchors_for("hidden")[0], init)
    assert_inside_and_fixed_point(module)
    assert not module._projection_handles  # fit end removed the hooks
    if cls is not LightningFirst:
        assert module.fit_starts == 1  # the user's own hook still ran, once

    # the anchors travel in the checkpoint even though on_save/on_load_checkpoint skip super()
    trainer.save_checkpoint(tmp_path / "a.ckpt")
    ckpt = torch.load(tmp_path / "a.ckpt", weights_only=False)
    assert torch.equal(ckpt["constraint_anchors"]["hidden"][0], init)
    resumed = cls(make_net(), lr=0.1)
    make_trainer(max_steps=8).fit(resumed, loader(), ckpt_path=tmp_path / "a.ckpt", weights_only=False)
    assert torch.equal(resumed.anchors_for("hidden")[0], init)  # restored, not re-captured at step 5
    assert projected_steps(resumed) == {"hidden": 3, "outer": 3}
    assert_inside_and_fixed_point(resumed)
    if cls is not LightningFirst:
        assert resumed.loaded_mine == 1


class LoadsAfterSuper(ThirdPartyClassifier):
    """Calls super() first, then changes the weights (e.g. loads pretrained ones) in its own hook."""

    def on_fit_start(self):
        super().on_fit_start()
        with torch.no_grad():
            self.net.hidden.weight.add_(1.0)


class ChildOfLoadsAfterSuper(LoadsAfterSuper):
    def on_fit_start(self):
        super().on_fit_start()


@pytest.mark.parametrize("cls", [LoadsAfterSuper, ChildOfLoadsAfterSuper])
def test_anchors_are_the_weights_the_whole_fit_start_leaves(make_trainer, cls):
    """The mixin's fit-start work runs once, after the outermost override, not inside its super()."""
    torch.manual_seed(0)
    module = cls(make_net(), lr=0.1)
    shifted = module.net.hidden.weight.detach().clone() + 1.0
    calls = []
    validate = module.validate_constraint_groups  # called once per arming of the projection
    module.validate_constraint_groups = lambda: (calls.append(1), validate())[1]
    make_trainer(max_steps=2).fit(module, loader())
    assert torch.equal(module.anchors_for("hidden")[0], shifted)
    assert len(calls) == 1
