"""Cost of the projections as a fraction of one training step, measured in one run.

A training step = zero_grad, forward, squared loss, backward, SGD-momentum step (plain PyTorch).
The projection is timed in its two states: the weights inside their sets (the usual case: a
norm and a min/max check) and outside (the projection rewrites the weights). Usage:
    python benchmarks/bench_projection.py [--n 500 --d 20 --width 50] [--repeats 2000]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from lit_memo.modules import ShallowNetModule


def timed(fn, repeats: int, rounds: int = 5) -> float:
    """Median over rounds of the mean time per call (seconds)."""
    per_round = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(repeats):
            fn()
        per_round.append((time.perf_counter() - t0) / repeats)
    return statistics.median(per_round)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--d", type=int, default=20)
    ap.add_argument("--width", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=1000)
    a = ap.parse_args()
    torch.manual_seed(0)
    x, y = torch.randn(a.n, a.d), torch.randn(a.n)
    module = ShallowNetModule(input_shape=(a.d,), width=a.width, regime="ours", radius=1.0, zeta=1e-3, gamma=1e3)
    module.capture_anchors_()
    optimizer = torch.optim.SGD(module.parameters(), lr=1e-4, momentum=0.9)

    def step():
        optimizer.zero_grad()
        module.loss(module(x), y).backward()
        optimizer.step()

    hidden, v = module.net.hidden.weight, module.net.output.weight
    far_w, far_v = hidden.detach() + 10.0, v.detach().clone()
    far_v[0, 0] = 0.0  # violates |v_i| >= zeta

    def project_active():
        with torch.no_grad():
            hidden.copy_(far_w)
            v.copy_(far_v)
        module.project_constraints_()

    def reset_only():
        with torch.no_grad():
            hidden.copy_(far_w)
            v.copy_(far_v)

    for fn in (step, module.project_constraints_, project_active):  # warm-up
        timed(fn, 50, rounds=1)
    t_step = timed(step, a.repeats)
    t_inside = timed(module.project_constraints_, a.repeats)
    t_active = timed(project_active, a.repeats) - timed(reset_only, a.repeats)
    print(f"n={a.n} d={a.d} width={a.width} threads={torch.get_num_threads()}")
    print(f"training step            : {t_step * 1e6:8.1f} us")
    print(f"projection, inside sets  : {t_inside * 1e6:8.1f} us  = {t_inside / t_step:.1%} of a step")
    print(f"projection, both active  : {t_active * 1e6:8.1f} us  = {t_active / t_step:.1%} of a step")


if __name__ == "__main__":
    main()
