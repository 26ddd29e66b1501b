"""Mirrored init through ResNet-18 (BatchNorm, running stats, 1x1 shortcuts) and the MLP: output exactly 0."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lit_memo.modules import MLPModule, ResNet18Module

IMAGE = (3, 16, 16)  # small images keep ResNet-18 cheap on a CPU; every stride still applies


def resnet(**kwargs) -> ResNet18Module:
    kwargs = {"input_shape": IMAGE, "num_outputs": 10, "task": "classification", "layer4_width": 16,
              "radius": 1.0, **kwargs}
    return ResNet18Module(**kwargs)


def mlp(**kwargs) -> MLPModule:
    kwargs = {"input_shape": (1, 28, 28), "num_outputs": 10, "task": "classification", "hidden_widths": [64, 16],
              "radius": 1.0, **kwargs}
    return MLPModule(**kwargs)


def inputs(module) -> torch.Tensor:
    return torch.randn(8, *module.input_shape) * 3 + 1  # far from BatchNorm's initial statistics


FAMILIES = {"resnet": resnet, "resnet_channels_last": lambda: resnet(channels_last=True),
            "resnet_imagenet_stem": lambda: resnet(stem="imagenet", input_shape=(3, 32, 32)), "mlp": mlp}


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("bf16", [False, True])
def test_ours_output_is_exactly_zero_train_and_eval(family, bf16):
    torch.manual_seed(0)
    module = FAMILIES[family]()
    x = inputs(module)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        module.train()
        out_train = module(x)
        out_train_again = module(x)  # running statistics were updated by the first pass: still twins
        module.eval()
        out_eval = module(x)
    for out in (out_train, out_train_again, out_eval):
        assert out.shape == (8, 10) and out.dtype == (torch.bfloat16 if bf16 else torch.float32)
        assert torch.count_nonzero(out) == 0


def test_regular_output_is_not_zero():
    torch.manual_seed(0)
    for module in (resnet(regime="regular"), mlp(regime="regular")):
        assert module(inputs(module)).abs().min() > 0


def test_every_conv_batchnorm_and_shortcut_has_twins():
    torch.manual_seed(0)
    net = resnet().net
    mirrored = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.BatchNorm2d))]
    assert len(mirrored) == 1 + 1 + 8 * 4 + 3 * 2  # stem conv+bn, 8 blocks x (2 convs + 2 bns), 3 shortcuts x 2
    for m in mirrored:
        tensors = [m.weight] + ([m.bias, m.running_mean, m.running_var] if isinstance(m, nn.BatchNorm2d) else [])
        for t in tensors:
            half = t.shape[0] // 2
            assert torch.equal(t[:half], t[half:])
    stem = net.conv1.weight  # RGB input channels are not mirrored, only the 64 output channels
    assert stem.shape == (64, 3, 3, 3) and not torch.equal(stem[:, 0], stem[:, 1])
    # LeCun normal drawn per layer on the first half: variance 1/fan_in
    w = net.layer3[0].conv2.weight[:128]
    assert abs(w.var().item() * 256 * 9 - 1) < 0.05


def test_groups_are_all_of_layer4_and_the_head():
    module = resnet()
    hidden = {id(p) for p in module.hidden_parameters()}
    assert hidden == {id(p) for p in module.net.layer4.parameters()}
    assert len(module.hidden_parameters()) == len(hidden) == 2 * 6 + 3  # 2 blocks x (2 convs, 2 BN weights,
    # 2 BN biases) + the shortcut's conv, BN weight and BN bias
    groups = module.constraint_groups()
    assert set(groups) == {"hidden", "outer"} and groups["outer"].param is module.net.fc.weight
    two = mlp(constrained_modules=["hidden.0", "hidden.1"])
    assert {id(p) for p in two.hidden_parameters()} == {id(p) for p in two.net.hidden.parameters()}
    only = mlp()
    assert [p.shape for p in only.hidden_parameters()] == [(16, 64), (16,)]


@pytest.mark.parametrize("names,message", [
    (["layer5"], "'layer5' is not a module of ResNet18"),
    (["fc"], "'fc' is the output layer"),
    (["relu"], "module 'relu' has no parameters"),
    ([], "constrained_modules is empty"),
])
def test_bad_constrained_modules_are_refused(names, message):
    with pytest.raises(ValueError, match=message):
        resnet(constrained_modules=names)


def test_flat_inputs_are_refused_for_resnet():
    with pytest.raises(ValueError, match="needs image inputs.*flatten=false"):
        resnet(input_shape=(768,))


def test_channels_last_changes_only_the_layout():
    torch.manual_seed(0)
    a = resnet()
    torch.manual_seed(0)
    b = resnet(channels_last=True)
    assert b.net.layer4[0].conv1.weight.is_contiguous(memory_format=torch.channels_last)
    for (n, p), q in zip(a.named_parameters(), b.parameters()):
        assert torch.equal(p, q), n


def test_sync_batchnorm_conversion_keeps_groups_and_zero_output():
    """What ``trainer.sync_batchnorm: true`` does under DDP: the parameters (the groups) are kept."""
    torch.manual_seed(0)
    module = resnet()
    before = [id(p) for p in module.hidden_parameters()]
    module.net = nn.SyncBatchNorm.convert_sync_batchnorm(module.net)
    assert any(isinstance(m, nn.SyncBatchNorm) for m in module.net.modules())
    assert [id(p) for p in module.hidden_parameters()] == before
    module.eval()  # SyncBatchNorm needs a GPU process group only in train mode
    assert torch.count_nonzero(module(inputs(module))) == 0
