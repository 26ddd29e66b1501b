"""Cost of the projections as a fraction of one training step, measured in one run.

A training step = zero_grad, forward, loss, backward, SGD-momentum step (plain PyTorch). The
projection (``module.project_constraints_()``) is timed in its two states, the weights inside
their sets (the usual case) and both sets violated (the projection rewrites the weights), and on
its two paths: host-checked (reads the inside-test back and skips the work when nothing moves: the
CPU default) and sync-free (decides and scales on the device, never reads back: the GPU default).
Usage:
    python benchmarks/bench_projection.py [--n 500 --d 20 --width 50] [--repeats 1000]
    python benchmarks/bench_projection.py --model resnet18 [--layer4-width 64] [--batch 32] [--device cuda]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def timed(fn, repeats: int, sync, rounds: int = 5) -> float:
    """Median over rounds of the mean time per call (seconds)."""
    per_round = []
    for _ in range(rounds):
        sync()
        t0 = time.perf_counter()
        for _ in range(repeats):
            fn()
        sync()
        per_round.append((time.perf_counter() - t0) / repeats)
    return statistics.median(per_round)


def build(a):
    """The module, one training batch and the loss, the way train.py's configs build them."""
    if a.model == "shallow":
        from lit_memo.modules import ShallowNetModule

        module = ShallowNetModule(input_shape=(a.d,), width=a.width, regime="ours", radius=1.0, zeta=1e-3, gamma=1e3)
        x, y = torch.randn(a.n, a.d), torch.randn(a.n)
        return module, x, y, f"shallow n={a.n} d={a.d} width={a.width}"
    from lit_memo.modules import ResNet18Module

    module = ResNet18Module(input_shape=(3, 32, 32), num_outputs=10, task="classification", layer4_width=a.layer4_width,
                            regime="ours", radius=1.0, zeta=1e-3, gamma=1e3)
    x, y = torch.randn(a.batch, 3, 32, 32), torch.randint(0, 10, (a.batch,))
    layer4 = sum(p.numel() for p in module.constraint_groups()["hidden"].params)
    return module, x, y, f"resnet18 layer4_width={a.layer4_width} ({layer4} constrained weights) batch={a.batch}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", choices=("shallow", "resnet18"), default="shallow")
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--d", type=int, default=20)
    ap.add_argument("--width", type=int, default=50)
    ap.add_argument("--layer4-width", type=int, default=64)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=1000)
    a = ap.parse_args()
    torch.manual_seed(0)
    module, x, y, what = build(a)
    device = torch.device(a.device)
    module, x, y = module.to(device), x.to(device), y.to(device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    module.capture_anchors_()
    optimizer = torch.optim.SGD(module.parameters(), lr=1e-4, momentum=0.9)
    step_repeats = a.repeats if a.model == "shallow" else max(1, a.repeats // 100)

    def step():
        optimizer.zero_grad()
        module.loss(module(x), y).backward()
        optimizer.step()

    groups = module.constraint_groups()
    hidden, v = groups["hidden"].params, groups["outer"].param
    far_w = [p.detach() + 10.0 for p in hidden]
    far_v = v.detach().clone()
    far_v.view(-1)[0] = 0.0  # violates |v_i| >= zeta

    def reset():
        with torch.no_grad():
            for p, f in zip(hidden, far_w):
                p.copy_(f)
            v.copy_(far_v)

    def project_active():
        reset()
        module.project_constraints_()

    timed(step, max(1, step_repeats // 10), sync, rounds=1)  # warm-up
    t_step = timed(step, step_repeats, sync)
    rows = []
    for sync_free in (False, True):
        module.projection_sync_free = sync_free
        module.project_constraints_()  # back inside the sets
        timed(module.project_constraints_, 50, sync, rounds=1)
        t_inside = timed(module.project_constraints_, a.repeats, sync)
        t_active = timed(project_active, a.repeats, sync) - timed(reset, a.repeats, sync)
        rows.append((sync_free, t_inside, t_active))
    print(f"{what} device={device} threads={torch.get_num_threads()}")
    print(f"training step                        : {t_step * 1e6:9.1f} us")
    for sync_free, t_inside, t_active in rows:
        path = "sync-free   " if sync_free else "host-checked"
        print(f"projection {path}, inside sets : {t_inside * 1e6:9.1f} us = {t_inside / t_step:6.2%} of a step")
        print(f"projection {path}, both active : {t_active * 1e6:9.1f} us = {t_active / t_step:6.2%} of a step")


if __name__ == "__main__":
    main()
