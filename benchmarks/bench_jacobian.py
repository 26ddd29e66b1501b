"""Jacobian spectrum: the Gram route (lit_memo.diagnostics.jacobian_spectrum) vs the SVD of the
explicit Jacobian (the whole J at once, torch.linalg.svdvals in float64), built either per sample
with vmap(jacrev) or with one jacrev of the batch output.

Models where both fit: the synthetic config's net (500 probes, J w.r.t. the hidden weights) and
torchvision's ResNet-18 with layer4 narrowed to 64 channels (32 CIFAR-sized probes x 10 classes,
J w.r.t. layer4 + fc, the constrained groups of Zhang et al.; with --all-params also w.r.t. every
parameter, Gram route only). Each method runs in a fresh process so that its peak memory (VmHWM
minus the RSS before) is its own. Usage:
    python benchmarks/bench_jacobian.py [--repeats 3] [--all-params]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torch.func import functional_call, jacrev, vmap

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from lit_memo.diagnostics import jacobian_spectrum, resolve_params  # noqa: E402

# model -> methods; with every parameter the narrowed ResNet-18's J is 320 x 3.06M (3.9 GB in
# float32, 7.8 GB more in float64 for the SVD): only the Gram route is run there
MODELS = {"synthetic": ("gram", "explicit_per_sample", "explicit_batch"),
          "resnet18_narrow": ("gram", "explicit_per_sample", "explicit_batch"),
          "resnet18_narrow_all_params": ("gram",)}


def build(name: str) -> tuple[nn.Module, torch.Tensor, list[str] | None]:
    torch.manual_seed(0)
    if name == "synthetic":
        from lit_memo.modules import ShallowNetModule

        model = ShallowNetModule(width=50, input_shape=(20,), num_outputs=1, regime="ours", radius=10.0)
        x = torch.randn(500, 20)
        return model, x / x.norm(dim=1, keepdim=True), ["net.hidden"]
    from torchvision.models import resnet18
    from torchvision.models.resnet import BasicBlock

    model = resnet18(num_classes=10)
    model.inplanes = 256
    model.layer4 = model._make_layer(BasicBlock, 64, 2, stride=2)
    model.fc = nn.Linear(64, 10)
    return model, torch.randn(32, 3, 32, 32), (None if name.endswith("all_params") else ["layer4", "fc"])


def explicit_spectrum(model: nn.Module, x: torch.Tensor, params: list[str], per_sample: bool = True) -> torch.Tensor:
    """svdvals of the whole J: per-sample ``vmap(jacrev)`` (the Gram route's own Jacobian
    kernel, all parameters at once) or one ``jacrev`` of the batch output (the textbook way)."""
    chosen = {n: p.detach() for n, p in resolve_params(model, params).items()}
    rest = {n: p.detach() for n, p in model.named_parameters() if n not in chosen}
    model.eval()
    if per_sample:
        one = lambda p, xi: functional_call(model, (p, rest), (xi.unsqueeze(0),)).reshape(-1)  # noqa: E731
        jac = vmap(jacrev(one), in_dims=(None, 0))(chosen, x)
    else:
        jac = jacrev(lambda p: functional_call(model, (p, rest), (x,)).reshape(-1))(chosen)
    rows = x.shape[0] * model(x[:1]).numel()
    jac = torch.cat([j.reshape(rows, -1) for j in jac.values()], dim=1)
    return torch.linalg.svdvals(jac.double())


METHODS = {
    "gram": jacobian_spectrum,
    "explicit_per_sample": explicit_spectrum,
    "explicit_batch": lambda model, x, params: explicit_spectrum(model, x, params, per_sample=False),
}


def _kib(key: str) -> int:
    return int(re.search(rf"{key}:\s+(\d+)", Path("/proc/self/status").read_text()).group(1)) * 1024


def measure(method: str, name: str, repeats: int) -> dict:
    model, x, params = build(name)
    fn = METHODS[method]
    fn(model, x[:2], params)  # warm-up (thread pool, functorch) on a tiny batch
    Path("/proc/self/clear_refs").write_text("5")  # peak RSS := current RSS
    base = _kib("VmRSS")
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        sv = fn(model, x, params)
        times.append(time.perf_counter() - t0)
    return {"seconds": min(times), "peak_bytes": _kib("VmHWM") - base, "sv": sv.tolist()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--all-params", action="store_true", help="also the narrowed ResNet-18 w.r.t. every parameter (slow)")
    ap.add_argument("--measure", nargs=2, metavar=("METHOD", "MODEL"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.measure:
        print(json.dumps(measure(*a.measure, a.repeats)))
        return
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; best of {a.repeats}, fresh process per method")
    for name, methods in MODELS.items():
        if name.endswith("all_params") and not a.all_params:
            continue
        res = {}
        for method in methods:
            repeats = 1 if name.endswith("all_params") else a.repeats  # tens of seconds each
            out = subprocess.run([sys.executable, __file__, "--measure", method, name, "--repeats", str(repeats)],
                                 capture_output=True, text=True, check=True).stdout
            res[method] = json.loads(out.strip().splitlines()[-1])
        g = res["gram"]
        sg = torch.tensor(g["sv"], dtype=torch.float64)
        print(f"{name}: {len(sg)} singular values")
        for method, r in res.items():
            se = torch.tensor(r["sv"], dtype=torch.float64)
            err = float((sg - se).abs().max() / se[0])
            ratio = "" if method == "gram" else (f"  gram/this: time {g['seconds'] / r['seconds']:.3f}, "
                                                 f"peak memory {g['peak_bytes'] / max(r['peak_bytes'], 1):.3f}, "
                                                 f"max|diff|/sigma_max {err:.1e}")
            print(f"  {method:20s} {r['seconds']:8.3f} s  peak +{r['peak_bytes'] / 2**20:8.1f} MiB{ratio}")


if __name__ == "__main__":
    main()
