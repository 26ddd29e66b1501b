"""What a run ends with: one summary block on the terminal and ``summary.json`` in its run folder.

The values come from the trainer's logged metrics, recorded as they are logged by
:class:`MetricsTracker` (a logger that keeps the last value of every key and the best loss), so
they are exactly what ``metrics.csv`` and W&B received, also with ``--trainer.logger=false``.
``finish_run`` is the one place that writes a run's closing files; add new ones there.
"""

from __future__ import annotations

import json
import math
from fnmatch import fnmatch
from pathlib import Path
from typing import Any, Mapping, Optional

from pytorch_lightning.loggers.logger import Logger, rank_zero_experiment
from pytorch_lightning.utilities import rank_zero_only

# the theory's certificates: their last value is the run's verdict (callbacks/ logs them)
CERTIFICATES = ("jacobian/sigma_min", "jacobian/rank", "constraint/*/ratio", "hessian/lambda_min", "ntk/drift")
SUMMARY_FILE = "summary.json"
FAILED_FILE = "FAILED"


class MetricsTracker(Logger):
    """An in-memory logger: the last value of every metric and the lowest of every ``*loss``.

    It lets the progress bar show a value a callback sent straight to the loggers (the
    diagnostics do, see ``callbacks/base.py``) and the summary read the run's metrics without
    parsing files. ``save_dir`` is the run folder, so ``trainer.log_dir`` stays there.
    """

    def __init__(self, save_dir: str) -> None:
        super().__init__()
        self._save_dir = save_dir
        self.last: dict[str, float] = {}
        self.best: dict[str, float] = {}

    @property
    def name(self) -> str:
        return "tracker"

    @property
    def version(self) -> str:
        return ""

    @property
    def save_dir(self) -> str:
        return self._save_dir

    @property
    @rank_zero_experiment
    def experiment(self) -> "MetricsTracker":
        return self

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: Optional[int] = None) -> None:
        for key, value in metrics.items():
            value = float(value)
            self.last[key] = value
            if key.endswith("loss") and not math.isnan(value):
                self.best[key] = min(value, self.best.get(key, math.inf))

    @rank_zero_only
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        pass


def build_summary(tracker: MetricsTracker, run_dir: Path, status: str, steps: int, wall_seconds: float,
                  test_metrics: Optional[Mapping[str, float]] = None) -> dict[str, Any]:
    """The run's closing facts as a JSON-ready dict (keys are metric names where they are metrics)."""
    last = tracker.last
    summary: dict[str, Any] = {
        "run_dir": str(run_dir),
        "status": status,
        "steps": steps,
        "wall_seconds": round(wall_seconds, 3),
    }
    if "train/loss" in last:
        summary["train/loss"] = last["train/loss"]
        # the module's own running best (over every GD step up to the last logged row) beats the best of the rows
        summary["train/loss_best"] = last.get("train/loss_best", tracker.best.get("train/loss"))
    for key in ("train/acc", "val/loss", "val/acc"):
        if key in last:
            summary[key] = last[key]
    summary["certificates"] = {k: v for k, v in sorted(last.items())
                               if any(fnmatch(k, pattern) for pattern in CERTIFICATES)}
    summary["test"] = {k: float(v) for k, v in (test_metrics or {}).items() if k != "step"}
    return summary


def format_summary(summary: Mapping[str, Any]) -> str:
    """The block printed at the end of a run."""
    def fmt(v: Any) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    lines = [f"run folder  {summary['run_dir']}",
             f"status      {summary['status']}: {summary['steps']} GD steps in {summary['wall_seconds']:.1f} s"]
    if "train/loss" in summary:
        lines.append(f"train/loss  last {fmt(summary['train/loss'])}, best {fmt(summary['train/loss_best'])}")
    for key in ("train/acc", "val/loss", "val/acc"):
        if key in summary:
            lines.append(f"{key:<11} {fmt(summary[key])}")
    for group in ("certificates", "test"):
        for key, value in summary[group].items():
            lines.append(f"{key:<24} {fmt(value)}")
    bar = "-" * 60
    return "\n".join([bar, "lit_memo run summary", *lines, bar])


def finish_run(run_dir: Path, summary: Mapping[str, Any]) -> Path:
    """Write the run's closing files (``summary.json``); returns its path."""
    path = Path(run_dir) / SUMMARY_FILE
    path.write_text(json.dumps(summary, indent=2, allow_nan=True) + "\n")
    return path


def mark_failed(run_dir: Path, reason: str) -> Path:
    """A ``FAILED`` file saying why: a run folder that did not finish says so."""
    path = Path(run_dir) / FAILED_FILE
    path.write_text(reason.rstrip() + "\n")
    return path
