"""Cost of the diagnostic callbacks as a fraction of fit time, at a config's own frequencies.

Fits the config from the same seed with its diagnostic callbacks, without them, and with as many
empty ``pl.Callback()`` (Lightning calls every hook of every callback at every optimizer step,
which costs something per step by itself); ``--repeats`` times each, interleaved, fastest counts.
Prints the wall-time fractions and the callbacks' self-reported ``<prefix>/seconds`` (less noisy
on a shared machine). Issue 3 aims under 5%. Usage:
    python benchmarks/bench_callback_overhead.py [--config synthetic_narrow.yaml] [--steps 20000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import pytorch_lightning as pl  # noqa: E402

import train  # noqa: E402
from lit_memo.callbacks.base import DiagnosticCallback  # noqa: E402


def timed_fit(args: list[str], variant: str) -> tuple[float, dict[str, float]]:
    """``variant``: ``with`` the config's diagnostics, ``without`` them, or as many ``empty``
    ``pl.Callback()`` in their place (what Lightning's hook dispatch alone costs)."""
    cli = train.build_cli(args)
    if variant != "with":
        kept = [cb for cb in cli.trainer.callbacks if not isinstance(cb, DiagnosticCallback)]
        n_diagnostics = len(cli.trainer.callbacks) - len(kept)
        cli.trainer.callbacks[:] = kept + ([pl.Callback() for _ in range(n_diagnostics)] if variant == "empty" else [])
    t0 = time.perf_counter()
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    seconds = time.perf_counter() - t0
    costs: dict[str, float] = defaultdict(float)
    with open(Path(cli.trainer.log_dir) / "metrics.csv", newline="") as f:
        for row in csv.DictReader(f):
            for key, value in row.items():
                if key.endswith("/seconds") and value:
                    costs[key] += float(value)
    return seconds, dict(costs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--config", default="synthetic_narrow.yaml")
    ap.add_argument("--steps", type=int, default=None, help="override trainer.max_steps")
    ap.add_argument("--repeats", type=int, default=3, help="fits of each kind; the fastest counts")
    ap.add_argument("overrides", nargs="*", help="extra train.py flags")
    a, extra = ap.parse_known_args()
    os.environ.setdefault("WANDB_MODE", "disabled")
    with tempfile.TemporaryDirectory() as out:
        args = ["--config", a.config, f"--output_dir={out}", "--trainer.enable_progress_bar=false",
                *([f"--trainer.max_steps={a.steps}"] if a.steps else []),
                *a.overrides, *extra]
        timed_fit([*args, "--trainer.max_steps=100"], "with")  # warm-up: imports, thread pool
        runs: dict[str, list[tuple[float, dict[str, float]]]] = {"without": [], "empty": [], "with": []}
        for _ in range(a.repeats):  # interleaved, best of each: other load on the machine only adds time
            for variant in runs:
                runs[variant].append(timed_fit(args, variant))
    without = min(s for s, _ in runs["without"])
    empty = min(s for s, _ in runs["empty"])
    with_cb, costs = min(runs["with"], key=lambda r: r[0])
    print(f"config {a.config}, best of {a.repeats}: fit {without:.2f} s without the diagnostics, {with_cb:.2f} s with "
          f"them, {empty:.2f} s with as many empty callbacks")
    print(f"wall-time overhead: {(with_cb - without) / without:+.1%} "
          f"(Lightning's hook dispatch to that many callbacks alone: {(empty - without) / without:+.1%})")
    total = sum(costs.values())
    print(f"self-reported cost: {total:.2f} s = {total / without:.1%} of the fit without them")
    for key, value in sorted(costs.items()):
        print(f"  {key:24s} {value:7.3f} s")


if __name__ == "__main__":
    main()
