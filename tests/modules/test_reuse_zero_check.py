"""Issue 7 point 3: ``mirror_init_()`` checks its zero-output claim itself and names the layer
that breaks it (Dropout before the head, GroupNorm splitting the twins, a layer left unmirrored);
GroupNorm/LayerNorm affine parameters are mirrored; the check leaves no trace."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
import torchvision
from torch import nn

from lit_memo import MirroredInitMixin
from lit_memo.models import PairwiseLinear
from reuse_thirdparty import ThirdPartyClassifier, make_net


class Wrap(MirroredInitMixin, nn.Module):
    def __init__(self, net: nn.Module, **mirror_kwargs) -> None:
        super().__init__()
        self.net = net
        self.mirror_init_(**mirror_kwargs)

    def forward(self, x):
        return self.net(x)


def mlp(*middle: nn.Module, width: int = 8, head_in: int = 8) -> nn.Sequential:
    return nn.Sequential(nn.Linear(5, width), *middle, PairwiseLinear(head_in, 2))


def zero_in_both_modes(model: nn.Module, x: torch.Tensor) -> bool:
    outs = []
    for mode in (True, False):
        model.train(mode)
        outs.append(torch.equal(model(x), torch.zeros_like(model(x))))
    return all(outs)


def test_dropout_right_before_the_head_is_refused_naming_it():
    with pytest.raises(ValueError, match=r"train mode.*layer 'net\.2' \(Dropout\).*dropout masks"):
        Wrap(mlp(nn.ReLU(), nn.Dropout(0.5)))


def test_dropout_feeding_a_mirrored_layer_is_harmless():
    torch.manual_seed(0)
    model = Wrap(nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 8), nn.ReLU(), PairwiseLinear(8, 2)))
    assert zero_in_both_modes(model, torch.randn(16, 5))


def test_torchvision_mobilenet_head_dropout_is_refused():
    """The issue's measurement: MobileNetV2's classifier is Dropout(0.2) then Linear."""
    net = torchvision.models.mobilenet_v2(num_classes=10, width_mult=0.25)  # small: channels still multiples of 8
    net.classifier[1] = PairwiseLinear(net.last_channel, 10)
    with pytest.raises(ValueError, match=r"layer 'net\.classifier\.0' \(Dropout\)"):
        Wrap(net)
    model = Wrap(net, verify=False)  # told not to check: eval mode is still exactly zero
    model.eval()
    assert torch.equal(model(torch.randn(2, 3, 32, 32)), torch.zeros(2, 10))


def test_groupnorm_that_splits_twins_is_refused_before_anything_changes():
    net = mlp(nn.GroupNorm(3, 6), width=6, head_in=6)
    before = [p.detach().clone() for p in net.parameters()]
    with pytest.raises(ValueError, match=r"layer 'net\.1' is GroupNorm with 3 groups.*even number of groups"):
        Wrap(net)
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))


@pytest.mark.parametrize("norm", [nn.GroupNorm(1, 8), nn.GroupNorm(4, 8), nn.LayerNorm(8)], ids=["gn1", "gn4", "ln"])
def test_groupnorm_and_layernorm_affine_parameters_are_mirrored(norm):
    with torch.no_grad():  # non-default affine parameters: the failing case
        norm.weight.uniform_(0.5, 2.0)
        norm.bias.normal_()
    torch.manual_seed(0)
    model = Wrap(mlp(norm, nn.ReLU()))
    assert torch.equal(norm.weight[:4], norm.weight[4:]) and torch.equal(norm.bias[:4], norm.bias[4:])
    assert zero_in_both_modes(model, torch.randn(16, 5))


def test_groupnorm_on_conv_features():
    class Conv(MirroredInitMixin, nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(3, 8, 3), nn.GroupNorm(2, 8), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
            self.head = PairwiseLinear(8, 4)
            with torch.no_grad():
                self.body[1].weight.normal_()
            self.mirror_init_()  # inferred check input: (4, 3, 32, 32)

        def forward(self, x):
            return self.head(self.body(x))

    torch.manual_seed(0)
    assert zero_in_both_modes(Conv(), torch.randn(3, 3, 20, 20))


def test_a_layer_left_out_of_mirrored_modules_is_named():
    class Partial(Wrap):
        def mirrored_modules(self):
            return ((n, m) for n, m in super().mirrored_modules() if n != "net.2")

    with pytest.raises(ValueError, match=r"layer 'net\.2' \(Linear\).*mirrored_modules"):
        Partial(nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), PairwiseLinear(8, 2)))


def test_a_functional_op_breaking_twins_is_reported():
    class Functional(Wrap):
        def forward(self, x):
            h = self.net[1](self.net[0](x))
            return self.net[2](torch.nn.functional.dropout(h, 0.5, self.training))

    with pytest.raises(ValueError, match=r"after layer 'net\.1', an operation that is not an nn.Module"):
        Functional(mlp(nn.ReLU()))


def test_the_check_leaves_no_trace():
    """Buffers (BatchNorm statistics, counters), train/eval flags and the global RNG are as before."""
    def build(verify: bool):
        torch.manual_seed(0)
        net = make_net()
        net.bn.eval()  # a user's choice the check must keep
        model = Wrap(nn.Sequential(net, nn.Dropout(0.0)), verify=verify)
        return model, torch.rand(3)  # the next draw of the global RNG

    (checked, draw_a), (unchecked, draw_b) = build(True), build(False)
    assert torch.equal(draw_a, draw_b)
    for (ka, a), (kb, b) in zip(checked.state_dict().items(), unchecked.state_dict().items()):
        assert ka == kb and torch.equal(a, b), ka
    assert checked.net[0].bn.num_batches_tracked.item() == 0
    assert not checked.net[0].bn.training and checked.net[0].stem.training


def test_input_for_the_check_inferred_given_or_from_example_input_array():
    class NeedsImages(MirroredInitMixin, nn.Module):
        """A first conv, then a Linear that only fits 28x28 inputs: the inferred 32x32 batch fails."""

        def __init__(self, **kwargs):
            super().__init__()
            self.conv = nn.Conv2d(1, 4, 3)
            self.fc = nn.Linear(4 * 26 * 26, 8)
            self.head = PairwiseLinear(8, 3)
            self.mirror_init_(**kwargs)

        def forward(self, x):
            return self.head(torch.relu(self.fc(torch.relu(self.conv(x)).flatten(1))))

    with pytest.raises(ValueError, match=r"could not run NeedsImages on a random batch of shape \(4, 1, 32, 32\).*example_input="):
        NeedsImages()
    NeedsImages(example_input=torch.randn(2, 1, 28, 28))

    class WithArray(NeedsImages):
        example_input_array = torch.randn(2, 1, 28, 28)

    WithArray()


def test_third_party_module_checks_itself_at_init():
    with pytest.raises(ValueError, match="not zero in train mode"):
        ThirdPartyClassifier(nn.Sequential(OrderedDict(
            stem=nn.Linear(12, 8), act=nn.ReLU(), drop=nn.Dropout(0.3), head=PairwiseLinear(8, 3))))


def test_meta_device_construction_skips_the_check():
    """Lightning's empty init builds on ``meta``: there are no values to check (nor to mirror)."""
    with torch.device("meta"):
        model = ThirdPartyClassifier(make_net())
    assert model.net.hidden.weight.is_meta
