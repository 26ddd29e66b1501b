"""The small grid that chose the synthetic configs' constants (issue 8); one table row per run.

    python benchmarks/grid_synthetic.py --config synthetic_narrow.yaml \
        --lr_hidden 0.01 0.05 0.1 --lr_outer 0.01 0.05 0.1 [--radius 10 inf] [--steps 20000]

Each run goes through ``train.main`` with the config's own settings except the grid's (and no
diagnostics callbacks, which do not change the weights), then reports what the README's run is
judged on: first, last and best loss, how often the loss rose by more than 1.5x from one logged
row (every ``steps_per_batch`` GD steps) to the next, the largest loss after the first row, and
for each constraint group the fraction of GD steps whose projection moved the weights, with the
final ball ratio ``||W - W0||_F / r`` and the final spread ``max|v| / min|v|`` of V.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import math
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import train  # noqa: E402
from lit_memo.optim import ball_distance  # noqa: E402


def summarize(cli, run_dir: Path) -> dict:
    with open(run_dir / "metrics.csv") as f:
        losses = [float(r["train/loss"]) for r in csv.DictReader(f) if r.get("train/loss")]
    spikes = sum(b > 1.5 * a for a, b in zip(losses, losses[1:]))
    row = {"first": losses[0], "last": losses[-1], "best": min(losses), "spikes": spikes,
           "max_after_first": max(losses[1:], default=math.nan)}
    module = cli.model
    for name, (steps, moved) in module.projection_stats.items():
        row[f"{name}_active"] = moved / max(steps, 1)
    groups = module.constraint_groups()
    if "hidden" in groups:
        row["ball_ratio"] = ball_distance(groups["hidden"].params, module.anchors_for("hidden")) / groups["hidden"].radius
    if "outer" in groups:
        v = groups["outer"].param.detach().abs()
        row["spread"] = (v.max() / v.min()).item()
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="synthetic_narrow.yaml")
    p.add_argument("--lr_hidden", type=float, nargs="+", default=[None], help="default: the config's")
    p.add_argument("--lr_outer", type=float, nargs="+", default=[None], help="default: the config's")
    p.add_argument("--radius", type=str, nargs="+", default=[None], help="r values (inf allowed); default: the config's")
    p.add_argument("--zeta", type=str, nargs="+", default=[None])
    p.add_argument("--gamma", type=str, nargs="+", default=[None])
    p.add_argument("--steps", type=int, default=None, help="GD steps (default: the config's max_steps)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1: the fastest at this size)")
    args, extra = p.parse_known_args()
    torch.set_num_threads(args.threads)
    keys = ("lr_hidden", "lr_outer", "radius", "zeta", "gamma")
    print("| " + " | ".join(keys) + " | first | last | best | spikes>1.5x | max after first | ball active | ball ratio "
          "| V active | spread | s |")
    print("|" + "---|" * (len(keys) + 10))
    for values in itertools.product(*(getattr(args, k) for k in keys)):
        flags = [f"--model.init_args.{k}={v}" for k, v in zip(keys, values) if v is not None]
        if args.steps:
            flags.append(f"--trainer.max_steps={args.steps}")
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            cli = train.main(["--config", args.config, "--trainer.callbacks=[]", "--trainer.enable_progress_bar=false",
                              "--wandb_mode=disabled", "--run_test=false", f"--output_dir={out}", *flags, *extra])
            seconds = time.perf_counter() - start
            (run_dir,) = {p.parent for p in Path(out).glob("*/*/metrics.csv")}
            r = summarize(cli, run_dir)
        shown = [str(v) if v is not None else "cfg" for v in values]
        fmt = lambda x: "-" if x is None else f"{x:.3g}"  # noqa: E731
        print("| " + " | ".join(shown) + f" | {fmt(r['first'])} | {fmt(r['last'])} | {fmt(r['best'])} | {r['spikes']} "
              f"| {fmt(r['max_after_first'])} | {fmt(r.get('hidden_active'))} | {fmt(r.get('ball_ratio'))} "
              f"| {fmt(r.get('outer_active'))} | {fmt(r.get('spread'))} | {seconds:.0f} |", flush=True)


if __name__ == "__main__":
    main()
