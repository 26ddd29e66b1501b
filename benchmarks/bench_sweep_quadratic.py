"""Batched quadratic nets (Ge et al. 2019) vs one plain PyTorch autograd loop per member, same process.

A sweep cell of G members (lrs x seeds, same width and data) trained the runner's way, as one
stacked model (``lit_memo/sweep/batched_quadratic.py``, grouped by the runner's ``members_per_group``
rule), against the plain loop: for each member a ``QuadraticModule``, ``zero_grad``, forward, loss,
``backward``, the torch optimizer's step, over its own batches (a seeded shuffling DataLoader).
Both see the same initial weights and the same batches; the final losses are printed side by side.

    nice python benchmarks/bench_sweep_quadratic.py                    # both presets
    nice python benchmarks/bench_sweep_quadratic.py --preset synthetic  # ge_synthetic_cpu's cell: n 50, d 20, k 40, GD
    nice python benchmarks/bench_sweep_quadratic.py --preset minibatch  # n 1000, d 100, k 200, Adam, batches of 128
    nice python benchmarks/bench_sweep_quadratic.py --preset mnist      # d 784, k 1568 (ge_mnist_quadratic's sizes)
    nice python benchmarks/bench_sweep_quadratic.py --end_to_end        # the whole ge_synthetic_cpu sweep, batching on vs off
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, TensorDataset

from lit_memo.data.base import RepeatedBatch
from lit_memo.modules import QuadraticModule
from lit_memo.sweep.batched_quadratic import BatchedAdam, BatchedQuadraticTrainer, BatchedSGD, LoaderOrder, QuadraticMember
from lit_memo.sweep.runner import members_per_group

PRESETS = {  # ge_synthetic_cpu.yaml's width-40 cell; a Ge MNIST-PCA-like mini-batch cell
    "synthetic": dict(n=50, d=20, width=40, batch=None, optimizer="sgd", lrs=[0.02, 0.05, 0.1], steps=5000),
    "minibatch": dict(n=1000, d=100, width=200, batch=128, optimizer="adam", lrs=[0.001, 0.003, 0.01], steps=400),
    # ge_mnist_quadratic.yaml's sizes: 784 inputs, k = 2d = 1568, Adam, batches of 128
    "mnist": dict(n=1000, d=784, width=1568, batch=128, optimizer="adam", lrs=[0.001, 0.003, 0.01], steps=40),
}
SEEDS = [0, 1, 2]


def data(n, d):
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(n, d, generator=gen) * 2 - 1
    return x / x.norm(dim=1, keepdim=True), torch.rand(n, generator=gen) * 2 - 1


def make_optimizer(kind, lr):
    if kind == "sgd":
        return lambda p: torch.optim.SGD(p, lr=lr, momentum=0.9)
    return lambda p: torch.optim.Adam(p, lr=lr)


def loader(x, y, batch, steps):
    if batch is None:
        return RepeatedBatch((x, y), steps)  # full-batch GD: one epoch of all the steps
    return DataLoader(TensorDataset(x, y), batch_size=batch, shuffle=True)


def plain(mod, kind, lr, steps, load, seed):
    opt = make_optimizer(kind, lr)(mod.parameters())
    torch.manual_seed(seed)
    done = 0
    while done < steps:
        for xb, yb in load:
            opt.zero_grad()
            loss = mod.loss(mod(xb), yb)
            loss.backward()
            opt.step()
            done += 1
            if done == steps:
                break
    return loss.item()


def batched(mods, lrs, seeds, kind, steps, load, per):
    weights, states = [], {}
    for s in sorted(set(seeds)):
        torch.manual_seed(s)
        states[s] = torch.get_rng_state()
    for i in range(0, len(mods), per):
        chunk = list(range(i, min(i + per, len(mods))))
        chunk_seeds = sorted({seeds[j] for j in chunk})
        orders = [LoaderOrder(load, states[s]) for s in chunk_seeds]
        members = [QuadraticMember(key=j, w0=mods[j].quadratic.weight.detach().clone(), lr=lrs[j],
                                   order=chunk_seeds.index(seeds[j])) for j in chunk]
        opt = BatchedSGD(0.9) if kind == "sgd" else BatchedAdam((0.9, 0.999), 1e-8)
        trainer = BatchedQuadraticTrainer(orders, members, opt, lam=0.0, log_every=steps)
        trainer.run(steps, -1)
        weights += [m.w for m in members]
    return weights


def bench(preset: str, threads: int, group_size: int = 0) -> None:
    cfg = PRESETS[preset]
    torch.set_num_threads(threads)
    x, y = data(cfg["n"], cfg["d"])
    load = loader(x, y, cfg["batch"], cfg["steps"])
    lrs = [lr for lr in cfg["lrs"] for _ in SEEDS]
    seeds = [s for _ in cfg["lrs"] for s in SEEDS]
    mods = []
    for lr, s in zip(lrs, seeds):
        torch.manual_seed(s)
        mods.append(QuadraticModule(input_shape=(cfg["d"],), width=cfg["width"], lam=0.0))
    rows = cfg["batch"] or cfg["n"]
    per = group_size or members_per_group(4 * cfg["width"] * (rows + cfg["d"]))  # the runner's rule by default
    t0 = time.perf_counter()
    got = batched(mods, lrs, seeds, cfg["optimizer"], cfg["steps"], load, per)
    t_batched = time.perf_counter() - t0
    # the plain loop: one member after the other; its last logged loss is that of the last step
    t0 = time.perf_counter()
    losses = [plain(m, cfg["optimizer"], lr, cfg["steps"], load, s) for m, lr, s in zip(mods, lrs, seeds)]
    t_plain = time.perf_counter() - t0
    # the final weights (the losses of memorizing members are at float32's round-off floor: noise)
    rel = max(float((g - m.quadratic.weight.detach()).norm() / m.quadratic.weight.detach().norm()) for g, m in zip(got, mods))
    print(f"{preset}: {len(mods)} members (lrs {cfg['lrs']} x seeds {SEEDS}), n {cfg['n']}, d {cfg['d']}, "
          f"width {cfg['width']}, batch {cfg['batch'] or 'full'}, {cfg['optimizer']}, {cfg['steps']} steps, "
          f"{threads} thread(s), groups of {min(per, len(mods))}")
    print(f"  plain autograd loop, one member at a time: {t_plain:7.2f} s")
    print(f"  batched group(s):                          {t_batched:7.2f} s   ratio {t_plain / t_batched:.2f}x")
    print(f"  final W, batched vs plain: max relative difference {rel:.1e} (final losses {min(losses):.1e} .. "
          f"{max(losses):.1e})")


def end_to_end(threads: int) -> None:
    """The whole ge_synthetic_cpu sweep through the runner, batched groups vs one train.py run per cell."""
    from lit_memo.sweep import load_sweep, run_sweep

    path = Path(__file__).resolve().parents[1] / "configs" / "sweeps" / "ge_synthetic_cpu.yaml"
    times = {}
    for mode in ("auto", "off"):
        with tempfile.TemporaryDirectory() as tmp:
            spec = load_sweep(path, tmp)
            t0 = time.perf_counter()
            run_sweep(spec, jobs=1, batching=mode, progress=False, threads=threads)
            times[mode] = time.perf_counter() - t0
    print(f"ge_synthetic_cpu (36 runs, 5000 steps each) through `python -m lit_memo.sweep`, --jobs 1, {threads} thread(s):")
    print(f"  one train.py run per cell (batching off): {times['off']:7.1f} s")
    print(f"  batched quadratic groups:                 {times['auto']:7.1f} s   ratio {times['off'] / times['auto']:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=[*PRESETS, "all"], default="all")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--end_to_end", action="store_true")
    parser.add_argument("--group_size", type=int, default=0, help="members per group (0: the runner's members_per_group rule)")
    args = parser.parse_args()
    if args.end_to_end:
        end_to_end(args.threads)
        return
    for preset in PRESETS if args.preset == "all" else [args.preset]:
        bench(preset, args.threads, args.group_size)


if __name__ == "__main__":
    main()
