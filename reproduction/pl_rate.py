"""PL linear-rate bound vs the measured GD loss curve (papers/003 "Jacobian view"; issue 12, row L).

For the package's loss, the MEAN squared error ``L = (1/n) ||f - y||^2`` (``MemorizationModule.loss``
is ``F.mse_loss``), ``grad L = (2/n) J^T r`` with ``J = df/dw`` (n x p) and ``r = f - y``, so

    ||grad L||^2 = (4/n^2) r^T J J^T r >= (4/n) lambda_min(J J^T) L           (PL, mu = 4 lambda_min / n).

If L is beta-smooth along the segment of a GD step of size eta (w' = w - eta grad L), the descent lemma
gives ``L(w') <= L(w) - eta (1 - beta eta / 2) ||grad L||^2``; for ``eta <= 1/beta`` the factor is
``>= 1/2``, so ``L(t+1) <= (1 - 2 eta lambda_min(t) / n) L(t)`` and

    L(t) <= L(t0) * prod_{s=t0}^{t-1} (1 - 2 eta lambda_min(s) / n),   lambda_min = sigma_min(J)^2.

Only valid for eta <= 1/beta: we read beta as the logged ``hessian/lambda_max`` (the local curvature at
the measured points, not a proof of a global bound) and print ``max eta * lambda_max``.

What the runs log, and how it is used:
- ``train/loss`` at row step s is the loss of the last step's forward: the loss at iterate s - 1.
- ``jacobian/sigma_min`` at row step s is measured at iterate s (after s GD steps), on all n samples,
  w.r.t. every trained parameter.
- Between measurements lambda_min is held piecewise constant: GD step j uses the SMALLER of the two
  measurements bracketing iterate j (the one at j when j is measured). A smaller lambda gives a larger
  (weaker) bound, so this is conservative whenever lambda_min is monotone between measurements; it
  is not guaranteed (lambda_min could dip in between), so we also print the largest relative change
  of sigma_min between consecutive measurements.

    python reproduction/pl_rate.py                 # runs train.py (2 scales x regular/ours), then compares
    python reproduction/pl_rate.py --runs RUN ...  # compares existing run folders only

Writes ``reproduction/pl_rate/pl_rate.png`` (log loss vs GD step, measured and bound, one panel per
run) and ``pl_rate.csv`` (one row per logged step and run), and prints a summary line per run.
"""

from __future__ import annotations

import argparse
import csv
import math
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from lit_memo.report import read_metrics

ROOT = Path(__file__).resolve().parent.parent
OUT = Path(__file__).resolve().parent / "pl_rate"
# (config overlay in reproduction/pl_rate/, learning rate): each config's own lr keeps eta * lambda_max(Hessian)
# <= 1 along its runs; the larger lr (the first we tried) lets the Hessian sharpen past 1/eta, breaking the
# smoothness assumption: kept to show what happens then
RUNS = (("pl_gd_n50_d100", 0.5), ("pl_gd_n50_d100", 1.0), ("pl_gd_n200_d10", 0.05), ("pl_gd_n200_d10", 0.2))
REGIMES = ("regular", "ours")


def held_lambda(measured_steps: np.ndarray, lam: np.ndarray, t0: int, t1: int) -> np.ndarray:
    """lambda used for GD steps j = t0 .. t1 - 1: the smaller of the two measurements bracketing j
    (the measurement at j itself when there is one); before the first / after the last
    measurement, the nearest one."""
    order = np.argsort(measured_steps)
    ms, lam = np.asarray(measured_steps)[order], np.asarray(lam, dtype=float)[order]
    j = np.arange(t0, t1)
    hi = np.clip(np.searchsorted(ms, j, side="left"), 0, len(ms) - 1)  # first measurement >= j
    lo = np.clip(np.searchsorted(ms, j, side="right") - 1, 0, len(ms) - 1)  # last measurement <= j
    return np.minimum(lam[lo], lam[hi])


def pl_bound(loss_iters: np.ndarray, loss0: float, measured_steps: np.ndarray, sigma_min: np.ndarray,
             lr: float, n: int) -> np.ndarray:
    """The PL bound ``L(t0) prod_{j=t0}^{t-1} max(0, 1 - 2 lr lambda(j) / n)`` at each iterate t of
    ``loss_iters`` (sorted, first = t0, whose loss is ``loss0``)."""
    loss_iters = np.asarray(loss_iters, dtype=int)
    t0, t1 = int(loss_iters[0]), int(loss_iters[-1])
    lam = held_lambda(np.asarray(measured_steps), np.asarray(sigma_min, dtype=float) ** 2, t0, t1)
    factors = np.maximum(0.0, 1.0 - 2.0 * lr * lam / n)
    with np.errstate(divide="ignore"):
        log_cum = np.concatenate([[0.0], np.cumsum(np.log(factors))])  # log prod over steps t0 .. t-1
    return loss0 * np.exp(log_cum[loss_iters - t0])


@dataclass
class Run:
    """What one run folder says: its config and its logged curves."""
    folder: Path
    regime: str
    n: int
    d: int
    lr: float
    loss_iters: np.ndarray  # iterate index of each logged train/loss (row step - 1)
    loss: np.ndarray
    sigma_steps: np.ndarray
    sigma_min: np.ndarray
    hessian_max: np.ndarray


def _column(curves: dict[str, tuple[np.ndarray, np.ndarray]], key: str) -> tuple[np.ndarray, np.ndarray]:
    """One value per GD step of a ``read_metrics`` curve (the last logged at that step)."""
    steps, values = curves.get(key, ((), ()))
    last = {int(s): float(v) for s, v in zip(steps, values)}  # read_metrics sorts by step, stably
    return np.array(list(last), dtype=int), np.array(list(last.values()), dtype=float)


def load_run(folder: Path) -> Run:
    """Read config.yaml and metrics.csv; refuse a run that is not plain full-batch GD."""
    folder = Path(folder)
    cfg_path, metrics = folder / "config.yaml", folder / "metrics.csv"
    if not cfg_path.is_file() or not metrics.is_file():
        raise SystemExit(f"{folder}: no config.yaml/metrics.csv (not a finished train.py run folder)")
    cfg = yaml.safe_load(cfg_path.read_text())
    model, data = cfg["model"]["init_args"], cfg["data"]["init_args"]
    opt = model.get("optimizer") or {}
    args = opt.get("init_args", {})
    problems = []
    if opt.get("class_path") != "torch.optim.SGD" or float(args.get("momentum", 0.0)) != 0.0:
        problems.append(f"optimizer must be torch.optim.SGD with momentum 0, got {opt}")
    if model.get("lr_hidden") is not None or model.get("lr_outer") is not None:
        problems.append("lr_hidden and lr_outer must be null (one learning rate for all parameters)")
    if not math.isinf(float(model.get("radius", math.inf))) or float(model.get("zeta", 0.0)) != 0.0:
        problems.append("radius must be inf and zeta 0 (no projection)")
    if not data.get("full_batch", True):
        problems.append("data.full_batch must be true (gradient descent)")
    if problems:
        raise SystemExit(f"{folder}: not plain full-batch GD: " + "; ".join(problems))
    curves = read_metrics(metrics)
    loss_steps, loss = _column(curves, "train/loss")
    sigma_steps, sigma_min = _column(curves, "jacobian/sigma_min")
    _, hessian_max = _column(curves, "hessian/lambda_max")
    if len(loss) < 2 or len(sigma_min) < 1:
        raise SystemExit(f"{folder}: metrics.csv needs train/loss at >= 2 steps and jacobian/sigma_min")
    return Run(folder, model.get("regime", "?"), int(data["n"]), int(data.get("d", 0)), float(args["lr"]), loss_steps - 1, loss,
               sigma_steps, sigma_min, hessian_max)


def compare(run: Run) -> dict:
    """Measured loss vs the PL bound: cumulative (from the first logged loss) and per interval
    (from each logged loss to the next), and the average per-step rates."""
    bound = pl_bound(run.loss_iters, run.loss[0], run.sigma_steps, run.sigma_min, run.lr, run.n)
    # per interval: L(t_{k+1}) <= L(t_k) * prod over the interval's steps
    step_bound = bound[1:] / np.maximum(bound[:-1], np.finfo(float).tiny) * run.loss[:-1]
    span = run.loss_iters[-1] - run.loss_iters[0]
    sig = run.sigma_min
    return {
        "bound": bound,
        "holds": bool(np.all(run.loss <= bound * (1 + 1e-6))),
        "first_violation": next((int(t) for t, l, b in zip(run.loss_iters, run.loss, bound) if l > b * (1 + 1e-6)), None),
        "interval_holds": int(np.sum(run.loss[1:] <= step_bound * (1 + 1e-6))),
        "intervals": len(step_bound),
        "rate_measured": -(math.log(run.loss[-1]) - math.log(run.loss[0])) / span,
        "rate_bound": -(math.log(max(bound[-1], np.finfo(float).tiny)) - math.log(bound[0])) / span,  # 0: 2 eta lambda >= n
        "eta_beta_max": run.lr * float(np.max(run.hessian_max)) if len(run.hessian_max) else float("nan"),
        "sigma_min_range": (float(sig.min()), float(sig.max())),
        "sigma_jump": float(np.max(np.abs(np.diff(sig)) / sig[:-1])) if len(sig) > 1 else 0.0,
    }


def run_training(config: str, lr: float, regime: str, output_dir: Path) -> Path:
    """One train.py run; returns its folder."""
    name = f"{config}_lr{lr:g}_{regime}"
    cmd = [sys.executable, str(ROOT / "train.py"), "--config", "synthetic_narrow.yaml",
           "--config", str(Path(__file__).resolve().parent / "pl_rate" / f"{config}.yaml"),
           "--model.regime", regime, "--model.optimizer.init_args.lr", str(lr), "--run_test", "false", "--trainer.enable_progress_bar", "false",
           "--output_dir", str(output_dir), "--name", name, "--wandb_mode", "disabled"]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    print(f"{name}: train.py took {time.perf_counter() - start:.1f} s", flush=True)
    return sorted((output_dir / name).iterdir())[-1]  # the newest run folder (named by time)


def plot(runs: list[Run], results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(len(runs), 4)
    rows = -(-len(runs) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
    for ax in axes.flat[len(runs):]:
        ax.set_visible(False)
    for ax, run, res in zip(axes.flat, runs, results):
        ax.semilogy(run.loss_iters, run.loss, "o-", ms=2, label="measured train/loss")
        ax.semilogy(run.loss_iters, res["bound"], "--", label=r"PL bound $\prod(1-2\eta\lambda_{min}/n)L$")
        ok = "holds" if res["holds"] else f"fails at step {res['first_violation']}"
        ax.set_title(f"{run.regime}, n={run.n}, d={run.d}, eta={run.lr:g}\n"
                     f"max eta*lambda_max(H) = {res['eta_beta_max']:.2f}; bound {ok}", fontsize=8)
        ax.set_xlabel("GD step")
        ax.set_ylabel("training loss (MSE)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_csv(runs: list[Run], results: list[dict], path: Path) -> None:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["run", "regime", "n", "d", "lr", "gd_step", "loss", "pl_bound"])
        for run, res in zip(runs, results):
            for t, loss, b in zip(run.loss_iters, run.loss, res["bound"]):
                w.writerow([f"{run.folder.parent.name}", run.regime, run.n, run.d, run.lr, int(t), f"{loss:.6e}", f"{b:.6e}"])


def summary_line(run: Run, res: dict) -> str:
    lo, hi = res["sigma_min_range"]
    return (f"{run.folder.parent.name}: loss <= bound at every logged step: {res['holds']}"
            + ("" if res["holds"] else f" (first violation at GD step {res['first_violation']})")
            + f"; per interval {res['interval_holds']}/{res['intervals']}"
            + f"; mean rate per step measured {res['rate_measured']:.3g}, bound {res['rate_bound']:.3g}"
            + f"; loss {run.loss[0]:.3g} -> {run.loss[-1]:.3g} over GD steps {run.loss_iters[0]}..{run.loss_iters[-1]}"
            + f"; sigma_min in [{lo:.3g}, {hi:.3g}] (largest jump between measurements {100 * res['sigma_jump']:.1f}%)"
            + f"; max eta*hessian/lambda_max {res['eta_beta_max']:.3g} (bound assumes <= 1)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", nargs="+", type=Path, help="existing run folders (default: train them)")
    parser.add_argument("--output_dir", type=Path, default=ROOT / "runs" / "pl_rate", help="where train.py runs go")
    parser.add_argument("--out", type=Path, default=OUT, help="where the PNG and CSV go")
    args = parser.parse_args(argv)
    folders = args.runs or [run_training(c, lr, r, args.output_dir) for c, lr in RUNS for r in REGIMES]
    runs = [load_run(f) for f in folders]
    results = [compare(r) for r in runs]
    args.out.mkdir(parents=True, exist_ok=True)
    plot(runs, results, args.out / "pl_rate.png")
    write_csv(runs, results, args.out / "pl_rate.csv")
    for run, res in zip(runs, results):
        print(summary_line(run, res))
    print(f"wrote {args.out / 'pl_rate.png'} and {args.out / 'pl_rate.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
