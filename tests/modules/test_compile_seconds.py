"""``compile/seconds`` covers what compiling costs: the first compiled forward *and* backward
(torch.compile builds the backward graph lazily, at the first backward), not the forward alone."""

from __future__ import annotations

import functools
import time

import torch
from torch import nn

from lit_memo.modules import ShallowNetModule

BACKWARD_SLEEP = 0.4  # a stand-in for compiling the backward graph, which happens inside backward()


class SlowBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        time.sleep(BACKWARD_SLEEP)
        return grad


@torch._dynamo.disable  # runs eagerly, so the sleep really happens inside the first backward
def slow_backward(x):
    return SlowBackward.apply(x)


class Net(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return slow_backward(self.inner(x))  # every parameter gradient waits for the sleep


def test_compile_seconds_includes_the_first_backward(monkeypatch):
    # dynamo only (no code generation): seconds, not minutes, on a CPU
    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="eager"))
    module = ShallowNetModule(input_shape=(5,), num_outputs=1, width=8, regime="regular", compile=True)
    module.net = Net(module.net)
    x, y = torch.randn(12, 5), torch.randn(12)
    start = time.perf_counter()
    _, loss = module._train_forward_loss(x, y)
    forward = time.perf_counter() - start
    assert module.compile_seconds is None  # the backward graph is not compiled yet
    loss.backward()
    first = module.compile_seconds
    assert first is not None and first >= forward + BACKWARD_SLEEP * 0.95
    _, loss = module._train_forward_loss(x, y)
    loss.backward()
    assert module.compile_seconds == first  # measured once
