"""``summary.png``: one run's logged curves at a glance, written at the end of every train.py run.

Panels for whatever the run logged: losses (always; log scale), accuracies, sigma_min /
sigma_max of the Jacobian (Zhang et al. Fig. 4 c-d along training), the constraint ratios
``||W - W0||_F / r`` and the V spread, the Hessian's extreme eigenvalues, the NTK drift and the
theory certificates. A run with no diagnostics still gets its loss panel.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
from matplotlib.figure import Figure

from .runs import read_metrics

SUMMARY_NAME = "summary.png"

# (title, predicate on a metric key, log y-scale)
PANELS = (
    ("loss", lambda k: k.endswith(("/loss", "/mse")) and k.split("/")[0] in ("train", "val", "test"), True),
    ("accuracy", lambda k: k.endswith("/acc"), False),
    ("Jacobian singular values", lambda k: k in ("jacobian/sigma_min", "jacobian/sigma_max"), True),
    ("constraint ratio ||W - W0||_F / r", lambda k: k.startswith("constraint/") and k.endswith("/ratio"), False),
    ("V spread max|v| / min|v|", lambda k: k == "constraint/outer/spread", True),
    ("Hessian extreme eigenvalues", lambda k: k in ("hessian/lambda_min", "hessian/lambda_max"), False),
    ("NTK drift ||K_t - K_0|| / ||K_0||", lambda k: k == "ntk/drift", False),
    ("theory certificates", lambda k: k.startswith("theory/") and not k.endswith("/seconds"), False),
)


def summary_figure(metrics: dict[str, tuple[np.ndarray, np.ndarray]], title: str = "") -> Figure:
    """The summary figure of one run's ``read_metrics`` output."""
    chosen = []
    for name, wanted, log in PANELS:
        keys = sorted(k for k in metrics if wanted(k))
        if keys or name == "loss":
            chosen.append((name, keys, log))
    cols = min(len(chosen), 3)
    rows = -(-len(chosen) // cols)
    fig = Figure(figsize=(4.6 * cols, 3.4 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, (name, keys, log) in zip(axes, chosen):
        for key in keys:
            steps, values = metrics[key]
            ok = np.isfinite(values) & ((values > 0) if log else True)
            ax.plot(steps[ok], values[ok], marker="." if ok.sum() < 30 else None, lw=1.2, label=key)
        if not keys:
            ax.text(0.5, 0.5, "no loss logged", ha="center", va="center", transform=ax.transAxes)
        if log and any((metrics[k][1] > 0).any() for k in keys):
            ax.set_yscale("log")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("GD step")
        ax.grid(True, alpha=0.3)
        if keys:
            ax.legend(fontsize=7)
    for ax in axes[len(chosen):]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def write_summary_png(run_dir: str | Path, title: Optional[str] = None) -> Optional[Path]:
    """Draw ``run_dir/summary.png`` from ``run_dir/metrics.csv``; None when the run has no metrics.csv."""
    run_dir = Path(run_dir)
    csv_path = run_dir / "metrics.csv"
    if not csv_path.is_file():
        return None
    fig = summary_figure(read_metrics(csv_path), title if title is not None else str(run_dir))
    out = run_dir / SUMMARY_NAME
    fig.savefig(out, dpi=110)
    return out


def log_summary(trainer, run_dir: str | Path, title: Optional[str] = None) -> Optional[Path]:
    """End-of-run hook for train.py: on global rank 0, write ``summary.png`` and hand it to every
    W&B logger of ``trainer`` (``WandbLogger.log_image`` under the key ``summary``)."""
    if not trainer.is_global_zero:
        return None
    for logger in trainer.loggers:
        logger.save()  # flush the CSV logger's last rows before reading them back
    path = write_summary_png(run_dir, title)
    if path is not None:
        from pytorch_lightning.loggers import WandbLogger

        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image(key="summary", images=[str(path)])
    return path
