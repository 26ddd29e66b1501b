"""A fit resumed through ``Trainer.fit(ckpt_path=...)`` (not train.py, whose pre-flight refuses it
first) from a checkpoint without a ball's anchor raises, naming the fix, instead of silently
centring the ball on the resume point; ``allow_anchor_recapture = True`` accepts it with a warning.
Loading such a checkpoint for evaluation is not a resume and stays allowed."""

from __future__ import annotations

import warnings

import pytest
import torch

from lit_memo.data import SyntheticDataModule
from lit_memo.modules import ShallowNetModule


def make(regime: str, radius: float = 0.3):
    torch.manual_seed(0)
    data = SyntheticDataModule(n=32, d=6, seed=1)
    return ShallowNetModule(input_shape=data.input_shape, width=12, regime=regime, radius=radius), data


@pytest.fixture
def anchorless_ckpt(make_trainer, tmp_path):
    module, data = make("regular")  # no constraint: its checkpoint holds no anchor
    trainer = make_trainer(max_steps=5)
    trainer.fit(module, datamodule=data)
    path = tmp_path / "regular.ckpt"
    trainer.save_checkpoint(path)
    assert "constraint_anchors" not in torch.load(path, weights_only=False)
    return path


def test_resume_without_anchor_raises_naming_the_fix(make_trainer, anchorless_ckpt):
    module, data = make("constrained_regular")  # the same network, with a ball
    with pytest.raises(RuntimeError, match=r"no anchor .* group\(s\) hidden.*allow_anchor_recapture = True"):
        make_trainer(max_steps=8).fit(module, datamodule=data, ckpt_path=anchorless_ckpt)
    assert "hidden" not in module.constraint_anchors


def test_allow_anchor_recapture_warns_and_centres_on_the_resume_point(make_trainer, anchorless_ckpt):
    module, data = make("constrained_regular", radius=100.0)  # a ball that never binds: the anchor stays visible
    module.allow_anchor_recapture = True
    resume_point = torch.load(anchorless_ckpt, weights_only=False)["state_dict"]["net.hidden.weight"]
    with pytest.warns(UserWarning, match="no anchor .*accepted: allow_anchor_recapture is True"):
        make_trainer(max_steps=8).fit(module, datamodule=data, ckpt_path=anchorless_ckpt)
    assert torch.equal(module.constraint_anchors["hidden"][0], resume_point)


def test_evaluating_an_anchorless_checkpoint_is_not_a_resume(make_trainer, anchorless_ckpt):
    module, data = make("constrained_regular")
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*no anchor")
        make_trainer().validate(module, datamodule=data, ckpt_path=anchorless_ckpt)
        ShallowNetModule.load_from_checkpoint(anchorless_ckpt)


def test_unanchored_groups_lists_balls_without_a_saved_anchor():
    """The one list both the mixin (above) and train.py's pre-flight read: balls only, by their saved anchors."""
    from lit_memo.modules.projected import unanchored_groups

    module = ShallowNetModule(input_shape=(6,), width=12, regime="ours", radius=0.3, zeta=0.1, gamma=10.0)
    groups = module.constraint_groups()
    assert sorted(groups) == ["hidden", "outer"]  # the outer set has no centre: never listed
    assert unanchored_groups(groups, {}) == ["hidden"]
    assert unanchored_groups(groups, {"constraint_anchors": None}) == ["hidden"]
    assert unanchored_groups(groups, {"constraint_anchors": {"hidden": [torch.zeros(1)]}}) == []
