"""Issue 7 points 4 and 10: constraint groups are validated at fit start (a tensor that is not a
parameter of the module, a frozen parameter, a parameter in two groups: refused before any step),
and with two optimizers a group is projected only after a step of an optimizer holding it."""

from __future__ import annotations

import pytest
import torch

from conftest import assert_inside_and_fixed_point
from lit_memo.optim import BallConstraint
from reuse_thirdparty import ThirdPartyClassifier, loader, make_net, projected_steps


class StaleCopy(ThirdPartyClassifier):
    def constraint_groups(self):
        stale = self.net.hidden.weight.detach().clone().requires_grad_()  # looks like the weight, is not
        return {"hidden": BallConstraint(stale, self.hparams.radius)}


class FrozenHead(ThirdPartyClassifier):
    def __init__(self, net):
        super().__init__(net)
        self.net.head.requires_grad_(False)  # e.g. fine-tuning the body only


class TwoGroupsOneParameter(ThirdPartyClassifier):
    def constraint_groups(self):
        return {"a": BallConstraint(self.net.hidden, 1.0), "b": BallConstraint(self.net.hidden.weight, 2.0)}


@pytest.mark.parametrize("cls,match", [
    (StaleCopy, r"group 'hidden', tensor 0 \(shape \(8, 8\)\) is not a parameter of StaleCopy"),
    (FrozenHead, r"group 'outer', tensor 0 .* frozen parameter 'net.head.weight'"),
    (TwoGroupsOneParameter, r"group 'b', tensor 0 .* already in group 'a'"),
])
def test_bad_groups_are_refused_at_fit_start_before_any_change(make_trainer, cls, match):
    torch.manual_seed(0)
    module = cls(make_net())
    before = {k: v.clone() for k, v in module.state_dict().items()}
    trainer = make_trainer(max_steps=3)
    with pytest.raises(ValueError, match=match):
        trainer.fit(module, loader())
    assert trainer.global_step == 0
    for key, value in module.state_dict().items():
        assert torch.equal(value, before[key]), key  # the frozen head was not projected


class TwoOptimizers(ThirdPartyClassifier):
    """Manual optimization: the body's optimizer steps every batch, the head's every second batch."""

    def __init__(self, net):
        super().__init__(net, radius=0.02, zeta=0.3, gamma=1.5)
        self.automatic_optimization = False

    def training_step(self, batch, batch_idx):
        body, head = self.optimizers()
        x, y = batch
        body.zero_grad(), head.zero_grad()
        self.manual_backward(self.criterion(self(x), y))
        body.step()
        if batch_idx % 2 == 0:
            head.step()

    def configure_optimizers(self):
        head = list(self.net.head.parameters())
        body = [p for p in self.parameters() if all(p is not q for q in head)]
        return torch.optim.SGD(body, lr=0.5), torch.optim.SGD(head, lr=0.5)


def test_two_optimizers_project_only_their_own_groups(make_trainer):
    torch.manual_seed(0)
    module = TwoOptimizers(make_net())
    trainer = make_trainer(max_epochs=1)
    trainer.fit(module, loader(n=48))  # 6 batches: 6 body steps, 3 head steps
    assert projected_steps(module) == {"hidden": 6, "outer": 3}
    assert module.projection_stats["hidden"][1] > 0 and module.projection_stats["outer"][1] > 0
    assert_inside_and_fixed_point(module)
