"""ResNet-18 trained a few steps on real CIFAR-10 images: layer4 stays in its ball; resume keeps the anchor."""

from __future__ import annotations

import pytest
import torch

from lit_memo.data import CIFAR10DataModule
from lit_memo.modules import ResNet18Module

RADIUS = 0.05  # small: the first SGD step leaves the ball, so the projection acts on every step


def distance64(params, anchors) -> float:
    """||W - W0||_F over all of layer4, in float64, independently of lit_memo.optim."""
    return torch.cat([(p.detach().double() - a.double()).flatten() for p, a in zip(params, anchors)]).norm().item()


def make(seed: int) -> ResNet18Module:
    torch.manual_seed(seed)
    return ResNet18Module(input_shape=(3, 32, 32), num_outputs=10, task="classification", layer4_width=16,
                          radius=RADIUS, zeta=1e-3, gamma=1e3,
                          optimizer=lambda groups: torch.optim.SGD(groups, lr=0.1, momentum=0.9, weight_decay=5e-4))


@pytest.fixture
def cifar(data_root):
    # 24 images, batch 8: an epoch is 3 steps, so the checkpoint at step 3 is at an epoch's end
    return lambda: CIFAR10DataModule(data_dir=str(data_root), subset_size=24, batch_size=8, augment=True,
                                     normalize=True)


@pytest.mark.slow
def test_layer4_stays_within_r_of_its_anchor_and_resume_keeps_it(cifar, make_trainer, tmp_path):
    module = make(0)
    start = [p.detach().clone() for p in module.net.layer4.parameters()]
    trainer = make_trainer(max_steps=3)
    trainer.fit(module, datamodule=cifar())
    assert trainer.global_step == 3
    (anchors,) = [module.anchors_for("hidden")]
    assert all(torch.equal(a, s) for a, s in zip(anchors, start))  # the anchor is the initial layer4
    layer4 = list(module.net.layer4.parameters())
    d = distance64(layer4, anchors)
    assert RADIUS * (1 - 1e-4) <= d <= RADIUS * (1 + 1e-6)  # on the sphere: the projection acted, exactly
    ckpt = tmp_path / "three.ckpt"
    trainer.save_checkpoint(ckpt)

    resumed = make(1)  # other initial weights: the anchors must come from the checkpoint
    assert not torch.equal(next(resumed.net.layer4.parameters()), start[0])
    trainer = make_trainer(max_steps=5)
    trainer.fit(resumed, datamodule=cifar(), ckpt_path=str(ckpt))
    assert trainer.global_step == 5
    anchors = resumed.anchors_for("hidden")
    assert all(torch.equal(a, s) for a, s in zip(anchors, start))
    assert distance64(list(resumed.net.layer4.parameters()), anchors) <= RADIUS * (1 + 1e-6)
    # training moved layer4 after the resume (the check above is not vacuous)
    assert distance64(list(resumed.net.layer4.parameters()), layer4) > 0
