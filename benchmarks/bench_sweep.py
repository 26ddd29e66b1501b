"""One Zhang et al. Fig. 4 cell (one width, one radius, the 7 x 7 learning-rate pairs) the sweep
runner's way vs one run at a time with a plain PyTorch autograd loop, same process; then the
projected wall time of the whole Fig. 4 grid (configs/sweeps/fig4_paper.yaml) on 2 CPU cores and,
from FLOP and byte counts, on one GPU.

The runner's way is what ``lit_memo.sweep`` does for such a cell: members grouped by the runner's
own rule (``members_per_group``: one member per group at this size), the written-out step eager as the
runner's ``--compile auto`` runs it (``--compile on``: compiled, compile time reported apart). Usage:
    nice python benchmarks/bench_sweep.py [--n 1000 --d 5 --width 400 --steps 2000 --threads 1]
    nice python benchmarks/bench_sweep.py --step_only       # one member: plain vs the trainer's step
    nice python benchmarks/bench_sweep.py --end_to_end --steps 2000 --baseline_members 7  # the whole runner
    nice python benchmarks/bench_sweep.py --width 100 --group_sizes 1 5 49   # time per member-step by group size
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch

from lit_memo.data import SyntheticDataModule
from lit_memo.modules import ShallowNetModule
from lit_memo.sweep.batched import BatchedShallowTrainer, Member
from lit_memo.sweep.runner import members_per_group

LRS = [1e-4, 1e-3, 5e-3, 1e-2, 5e-2, 1e-1, 5e-1]  # Zhang et al.'s grid, for W and for v
WIDTHS = [100, 200, 400, 600, 800]  # fig4_paper.yaml
RUNS_PER_WIDTH = 8 * 49  # (4 ours radii + 3 constrained + 1 regular) x 49 lr pairs
PAPER_STEPS = 200_000


def module(n_in, width, lr_h, lr_o, radius):
    torch.manual_seed(0)  # every member starts from the same weights, as in one seed's sweep
    return ShallowNetModule(input_shape=(n_in,), width=width, regime="ours", radius=radius, zeta=1e-3, gamma=1e3,
                            lr_hidden=lr_h, lr_outer=lr_o,
                            optimizer=lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9))


def plain_run(mod, x, y, steps):
    """The plain PyTorch baseline: autograd, torch.optim.SGD, the library's projections."""
    opt = mod.configure_optimizers()
    mod.capture_anchors_()
    mod.project_constraints_()
    for _ in range(steps):
        opt.zero_grad()
        loss = mod.loss(mod(x), y)
        loss.backward()
        opt.step()
        mod.project_constraints_()
    return loss.item()


def member(key, mod) -> Member:
    """A batched member starting where ``mod`` starts, with its learning rates and radius."""
    return Member(key=key, w0=mod.net.hidden.weight.detach().clone(), v0=mod.net.output.weight.detach().clone(),
                  lr_hidden=mod.lr_hidden, lr_outer=mod.lr_outer, radius=mod.radius)


def batched_trainer(x, y, members, compile_=False) -> BatchedShallowTrainer:
    """The batched trainer for ``module``'s regime ("ours": tanh pairs, ball and V, momentum 0.9)."""
    return BatchedShallowTrainer(x, y, members, activation="tanh", pairwise=True, ball=True, outer_set=True,
                                 zeta=1e-3, gamma=1e3, momentum=0.9, log_every=50, compile=compile_)


def member_bytes(mods, x) -> int:
    """The runner's ``member_bytes`` for this cell: (n + d) x width floats."""
    return 4 * mods[0].hparams.width * (len(x) + x.shape[1])


def runner_way(mods, x, y, steps, compile_):
    members = [member(i, m) for i, m in enumerate(mods)]
    per = members_per_group(member_bytes(mods, x))  # the runner's rule
    compile_s, losses = 0.0, []
    for i in range(0, len(members), per):
        t = batched_trainer(x, y, members[i:i + per], compile_)
        t.run(steps)
        compile_s += t.compile_seconds
        losses += [m.log[-1][1] for m in t.members]
    return per, compile_s, losses


def step_only(mods, x, y, rounds=5, steps=100):
    """One member: plain autograd step vs the batched trainer's step (eager, compiled), interleaved."""
    mod = mods[24]
    opt = mod.configure_optimizers()
    mod.capture_anchors_()

    def plain(k):
        for _ in range(k):
            opt.zero_grad()
            mod.loss(mod(x), y).backward()
            opt.step()
            mod.project_constraints_()

    variants = {"trainer eager": batched_trainer(x, y, [member(0, mod)]),
                "trainer compiled": batched_trainer(x, y, [member(0, mod)], compile_=True)}
    plain(10)
    for tr in variants.values():
        tr.run(10)
    times = {name: [] for name in ["plain", *variants]}
    for _ in range(rounds):
        t = time.perf_counter(); plain(steps); times["plain"].append(time.perf_counter() - t)  # noqa: E702
        for name, tr in variants.items():
            t = time.perf_counter(); tr.run(tr.step + steps); times[name].append(time.perf_counter() - t)  # noqa: E702
    best = {k: min(v) / steps for k, v in times.items()}
    print(f"one member (n={len(x)}, width={mod.hparams.width}), best of {rounds} interleaved rounds of {steps} steps:")
    for name, value in best.items():
        print(f"  {name:28s} {value * 1e3:6.3f} ms/step  {best['plain'] / value:5.2f}x of plain")


def group_sizes(mods, x, y, sizes, steps=300) -> None:
    """Time per member-step of the 49 members trained in groups of each size (the runner's
    ``members_per_group`` rule is chosen from these), interleaved, best of 3."""
    members = [member(i, m) for i, m in enumerate(mods)]
    best = {size: math.inf for size in sizes}
    for _ in range(3):
        for size in sizes:
            t0 = time.perf_counter()
            for i in range(0, len(members), size):
                for m in members[i:i + size]:
                    m.log, m.w, m.v, m.status = [], None, None, "running"
                batched_trainer(x, y, members[i:i + size]).run(steps)
            best[size] = min(best[size], (time.perf_counter() - t0) / len(members) / steps)
    nbytes = member_bytes(mods, x)
    print(f"n={len(x)} width={mods[0].hparams.width}: {nbytes / 1e6:.2f} MB per member, the runner's rule: "
          f"{members_per_group(nbytes)} per group")
    for size, value in best.items():
        print(f"  groups of {size:3d}: {value * 1e6:7.1f} us per member-step")


def end_to_end(a, x, y, pairs) -> None:
    """The whole runner (``python -m lit_memo.sweep``: --jobs = cores, one thread each, run folders,
    CSVs, checkpoints) on the 49-pair cell, against the plain loop one run at a time on all cores."""
    import os
    import tempfile

    import yaml

    from lit_memo.sweep import load_sweep, run_sweep

    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        sweep = Path(tmp) / "cell.yaml"
        sweep.write_text(yaml.safe_dump({
            "config": "synthetic_narrow.yaml", "output_dir": tmp,
            "flags": {"trainer.max_steps": a.steps, "trainer.callbacks": [], "wandb_mode": "disabled",
                      "data.init_args.n": a.n, "data.init_args.d": a.d, "model.init_args.width": a.width,
                      "model.init_args.radius": a.radius, "model.init_args.zeta": 1e-3, "model.init_args.gamma": 1e3},
            "grid": {"model.init_args.lr_hidden": LRS, "model.init_args.lr_outer": LRS}}))
        t0 = time.perf_counter()
        table = run_sweep(load_sweep(sweep), jobs=cores, threads=1, progress=False)
        runner_s = time.perf_counter() - t0
    modes = sorted({str(r.get("mode")) for r in table.rows.values()})
    torch.set_num_threads(cores)
    k = a.baseline_members
    t0 = time.perf_counter()
    for h, o in pairs[:k]:
        plain_run(module(a.d, a.width, h, o, a.radius), x, y, a.steps)
    plain_s = (time.perf_counter() - t0) * len(pairs) / k
    print(f"n={a.n} d={a.d} width={a.width} steps={a.steps}, 49 lr pairs, {cores} cores")
    print(f"plain autograd loop, one run at a time, {cores} threads: {plain_s:8.1f} s"
          + (f" [timed {k} runs, scaled]" if k < len(pairs) else ""))
    print(f"python -m lit_memo.sweep --jobs {cores} (modes {modes}), whole runner: {runner_s:8.1f} s")
    print(f"ratio plain / runner = {plain_s / runner_s:.2f}x")


def gpu_projection(n, d):
    """Per member-step FLOPs and bytes of the batched step; H100 SXM peak 67 TFLOP/s fp32, 3.35 TB/s."""
    rows = []
    total = 0.0
    for m in WIDTHS:
        flops = 2 * n * m * d * 2 + 2 * n * m + 12 * n * m  # X W^T and g_z^T X, the two thin matmuls with v, elementwise
        bytes_eager = 12 * 4 * n * m  # about 12 unfused passes over the (n, m) activations
        bytes_fused = 3 * 4 * n * m  # a fused step reads/writes (n, m) about 3 times
        t_fused = max(flops / 67e12, bytes_fused / 3.35e12)
        t_eager = max(flops / 67e12, bytes_eager / 3.35e12)
        total += RUNS_PER_WIDTH * PAPER_STEPS * t_fused
        rows.append((m, flops, bytes_eager, bytes_fused, t_eager, t_fused))
    launches = 5 * 3 * PAPER_STEPS * 20 * 5e-6  # 15 (width, regime) groups, ~20 kernels of ~5 us per step
    return rows, total, launches


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--d", type=int, default=5)
    ap.add_argument("--width", type=int, default=400)
    ap.add_argument("--radius", type=float, default=20.0)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=1, help="one per worker: the runner runs --jobs 2 on 2 cores")
    ap.add_argument("--baseline_members", type=int, default=49, help="plain runs timed (scaled to 49 if fewer)")
    ap.add_argument("--compile", choices=("on", "off"), default="off", help="off: what the runner's --compile auto does")
    ap.add_argument("--step_only", action="store_true", help="only the one-member step comparison")
    ap.add_argument("--end_to_end", action="store_true", help="the whole runner with --jobs = cores vs the plain loop")
    ap.add_argument("--group_sizes", type=int, nargs="*", help="time per member-step in groups of these sizes")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    dm = SyntheticDataModule(n=a.n, d=a.d, seed=0)
    dm.setup("fit")
    x, y = dm.splits["train"].tensors
    pairs = [(h, o) for h in LRS for o in LRS]
    if a.end_to_end:
        return end_to_end(a, x, y, pairs)
    mods = [module(a.d, a.width, h, o, a.radius) for h, o in pairs]
    if a.step_only:
        return step_only(mods, x, y)
    if a.group_sizes:
        return group_sizes(mods, x, y, a.group_sizes)
    t0 = time.perf_counter()
    per, compile_s, batched_losses = runner_way(mods, x, y, a.steps, a.compile == "on")
    runner_s = time.perf_counter() - t0
    k = a.baseline_members
    t0 = time.perf_counter()
    plain_losses = [plain_run(module(a.d, a.width, h, o, a.radius), x, y, a.steps) for h, o in pairs[:k]]
    plain_s = (time.perf_counter() - t0) * len(pairs) / k
    agree = sum(1 for p, b in zip(plain_losses, batched_losses)
                if (not math.isfinite(p) and not math.isfinite(b)) or abs(p - b) <= 1e-3 * max(abs(p), 1e-6))
    steady = runner_s - compile_s
    print(f"n={a.n} d={a.d} width={a.width} radius={a.radius} steps={a.steps} members={len(pairs)} threads={a.threads}")
    print(f"plain autograd, one run at a time: {plain_s:8.1f} s ({plain_s / len(pairs) / a.steps * 1e6:.0f} us/step)"
          + (f" [timed {k} runs, scaled]" if k < len(pairs) else ""))
    print(f"runner's way ({per} member(s)/group, compile {a.compile}): {runner_s:8.1f} s, of which compile {compile_s:.1f} s")
    print(f"ratio plain / runner = {plain_s / runner_s:.2f}x (with compile), {plain_s / steady:.2f}x (steps only)")
    print(f"final losses agree (rel 1e-3) for {agree}/{len(plain_losses)} runs")
    member_step = steady / len(pairs) / a.steps
    cpu_s = sum(RUNS_PER_WIDTH * PAPER_STEPS * member_step * m * a.n / (a.width * a.n) for m in WIDTHS) / 2
    print(f"\nFig. 4 grid at paper scale ({len(WIDTHS) * RUNS_PER_WIDTH} runs x {PAPER_STEPS} steps, n={a.n}, widths {WIDTHS}):")
    print(f"  2 CPU cores (--jobs 2, this step time scaled by width): {cpu_s / 3600:.0f} h = {cpu_s / 86400:.1f} days")
    rows, gpu_s, launch_s = gpu_projection(a.n, a.d)
    for m, flops, be, bf, te, tf in rows:
        print(f"  width {m}: {flops / 1e6:.1f} MFLOP, {be / 1e6:.1f} MB unfused / {bf / 1e6:.1f} MB fused per member-step"
              f" -> {te * 1e6:.2f} / {tf * 1e6:.2f} us on an H100 (memory-bound)")
    print(f"  one H100, all members of a (width, regime) batched, fused step: {gpu_s / 60:.0f} min of memory traffic"
          f" + {launch_s / 60:.0f} min of kernel launches (15 groups x {PAPER_STEPS} steps; CUDA graphs remove most)")


if __name__ == "__main__":
    main()
