"""Issue 7 point 1: ``load_from_checkpoint`` returns the saved model bitwise, whichever way the
network is built, although ``mirror_init_()`` runs in ``__init__``; resuming a fit still works."""

from __future__ import annotations

import io

import pytest
import torch

from reuse_thirdparty import BuiltInside, ThirdPartyClassifier, loader, make_net


def assert_same_state(a, b) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


@pytest.mark.parametrize("build", ["argument", "inside"])
def test_load_from_checkpoint_is_bitwise_the_saved_model(make_trainer, tmp_path, build):
    torch.manual_seed(0)
    module = ThirdPartyClassifier(make_net()) if build == "argument" else BuiltInside()
    trainer = make_trainer(max_steps=6)
    trainer.fit(module, loader())
    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)
    # a pickled network in the hyperparameters needs the full unpickler
    loaded = type(module).load_from_checkpoint(path, weights_only=False)
    assert_same_state(module, loaded)
    assert loaded.constraint_anchors.keys() == module.constraint_anchors.keys()
    x = torch.randn(5, 12)
    module.eval(), loaded.eval()
    out = loaded(x)
    assert torch.equal(out, module(x)) and out.abs().max() > 0  # trained, not the zero-output init


def test_mirroring_never_writes_into_storage_it_did_not_allocate():
    """The mechanism behind point 1: unpickled together, the network and the state_dict share storage."""
    torch.manual_seed(0)
    net = make_net()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)  # "trained" weights, far from any mirrored init
    buffer = io.BytesIO()
    torch.save({"net": net, "state_dict": net.state_dict()}, buffer)
    buffer.seek(0)
    blob = torch.load(buffer, weights_only=False)
    shared = blob["state_dict"]["hidden.weight"]
    assert shared.untyped_storage().data_ptr() == blob["net"].hidden.weight.untyped_storage().data_ptr()
    saved = {k: v.clone() for k, v in blob["state_dict"].items()}
    ThirdPartyClassifier(blob["net"])  # mirrors (and verifies) in __init__
    for key, value in blob["state_dict"].items():
        assert torch.equal(value, saved[key]), key


def test_fit_resumes_from_ckpt_path_as_if_uninterrupted(make_trainer, tmp_path):
    torch.manual_seed(0)
    net = make_net()
    init = {k: v.clone() for k, v in ThirdPartyClassifier(net).state_dict().items()}

    def fresh():
        module = ThirdPartyClassifier(make_net())
        module.load_state_dict(init)  # the same initial weights every time
        return module

    data = lambda: loader(n=24)  # noqa: E731  3 batches per epoch: resume at an epoch boundary
    full = fresh()
    make_trainer(max_epochs=2).fit(full, data())
    half = fresh()
    first = make_trainer(max_epochs=1)
    first.fit(half, data())
    first.save_checkpoint(tmp_path / "half.ckpt")
    resumed = fresh()
    make_trainer(max_epochs=2).fit(resumed, data(), ckpt_path=tmp_path / "half.ckpt", weights_only=False)
    assert resumed.trainer.global_step == 6
    assert_same_state(full, resumed)
    assert torch.equal(resumed.anchors_for("hidden")[0], init["net.hidden.weight"])  # restored, never re-captured
    assert not torch.equal(resumed.net.hidden.weight, init["net.hidden.weight"])
