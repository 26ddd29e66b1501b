"""The Gram route never holds the whole Jacobian (issue 3: narrowed ResNet-18, 32 probes x 10
classes, within 2 GB of extra memory)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from torch import nn

from lit_memo.diagnostics import jacobian_spectrum

STATUS = Path("/proc/self/status")


def _status_bytes(key: str) -> int:
    return int(re.search(rf"{key}:\s+(\d+)", STATUS.read_text()).group(1)) * 1024


def narrow_resnet18(layer4_width: int = 64, num_classes: int = 10) -> nn.Module:
    """torchvision's ResNet-18 with layer4 narrowed from 512 channels (Zhang et al. Fig. 8)."""
    from torchvision.models import resnet18
    from torchvision.models.resnet import BasicBlock

    model = resnet18(num_classes=num_classes)
    model.inplanes = 256
    model.layer4 = model._make_layer(BasicBlock, layer4_width, 2, stride=2)
    model.fc = nn.Linear(layer4_width, num_classes)
    return model


def _extra_peak_bytes(fn) -> int:
    """Peak RSS growth while ``fn`` runs (VmHWM is reset to the current RSS first)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pytest.skip("cannot reset the peak RSS of this process")
    base = _status_bytes("VmRSS")
    fn()
    return _status_bytes("VmHWM") - base


@pytest.mark.slow
@pytest.mark.skipif(not STATUS.exists(), reason="peak memory is read from /proc/self/status (Linux)")
def test_narrow_resnet18_32_probes_10_classes_within_2gb():
    """The JacobianRankCallback's default: J w.r.t. the constrained groups (layer4 and fc)."""
    torch.set_num_threads(1)  # many short parallel regions crawl when another process holds a core
    torch.manual_seed(0)
    model, x = narrow_resnet18(), torch.randn(32, 3, 32, 32)
    out = {}
    extra = _extra_peak_bytes(lambda: out.update(sv=jacobian_spectrum(model, x, ["layer4", "fc"])))
    assert extra < 2 * 2**30, f"{extra / 2**30:.2f} GiB extra"
    assert out["sv"].shape == (320,) and float(out["sv"][-1]) > 0


@pytest.mark.slow
@pytest.mark.skipif(not STATUS.exists(), reason="peak memory is read from /proc/self/status (Linux)")
def test_memory_follows_max_bytes_not_the_size_of_the_jacobian():
    torch.set_num_threads(1)  # (conftest restores it)
    torch.manual_seed(0)
    model, x = narrow_resnet18(), torch.randn(32, 3, 32, 32)
    params = ["layer4", "fc"]
    full = 320 * sum(p.numel() for n, p in model.named_parameters() if n.split(".")[0] in params) * 4
    jacobian_spectrum(model, x[:2], params)  # warm-up: thread pools and allocator outside the measurement
    extra = _extra_peak_bytes(lambda: jacobian_spectrum(model, x, params, max_bytes=32 * 2**20))
    assert extra < full / 2, f"{extra / 2**20:.0f} MiB extra for a {full / 2**20:.0f} MiB Jacobian"
