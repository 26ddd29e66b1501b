"""One cell of a sweep, run in a worker process through train.py's own code path (``train.main``).

A cell owns a folder; every train.py run of it (the first, and each resume from ``last.ckpt``)
is a run folder inside. Its row is read back from those folders' ``metrics.csv`` and written to
``result.json`` in the cell folder before the runner is told, so a sweep killed between the two
still finds the result.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import lit_memo

TRAIN_PY = Path(lit_memo.__file__).resolve().parents[1] / "train.py"
RESULT = "result.json"


def load_train():
    """train.py lives next to the package (the repository root), not inside it."""
    if "train" in sys.modules and getattr(sys.modules["train"], "build_cli", None):
        return sys.modules["train"]
    if not TRAIN_PY.is_file():
        raise FileNotFoundError(f"train.py not found at {TRAIN_PY}: the sweep runner needs the repository checkout "
                                "(pip install -e .), not a plain wheel install")
    spec = importlib.util.spec_from_file_location("train", TRAIN_PY)
    module = importlib.util.module_from_spec(spec)
    sys.modules["train"] = module
    spec.loader.exec_module(module)
    return module


def init_worker(threads: int) -> None:
    import logging

    import torch

    torch.set_num_threads(threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    # Lightning's per-Trainer info lines ("GPU available", tips), once per member, drown the progress
    # bar; warnings and errors still show, and each cell's outcome is in the results table
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)


def run_folders(cell_dir: Path) -> list[Path]:
    """The cell's run folders, oldest first (a resume makes a new one)."""
    return sorted((p.parent for p in cell_dir.rglob("metrics.csv")), key=lambda p: p.stat().st_mtime_ns)


def latest_checkpoint(cell_dir: Path) -> Path | None:
    ckpts = sorted(cell_dir.rglob("last.ckpt"), key=lambda p: p.stat().st_mtime_ns)
    return ckpts[-1] if ckpts else None


def read_metrics(cell_dir: Path) -> dict[str, Any]:
    """Final and best train loss and the last value of every other logged metric, over all run
    folders of the cell; a step logged twice (before a kill and after the resume) counts once,
    the later folder's value winning."""
    by_step: dict[float, dict[str, float]] = {}
    for folder in run_folders(cell_dir):
        with open(folder / "metrics.csv", newline="") as f:
            for row in csv.DictReader(f):
                step = float(row.get("step") or "nan")
                values = {k: float(v) for k, v in row.items() if v not in ("", None) and k not in ("step", "epoch")}
                if values and not math.isnan(step):
                    by_step.setdefault(step, {}).update(values)
    out: dict[str, Any] = {}
    losses = [(s, v["train/loss"]) for s, v in sorted(by_step.items()) if "train/loss" in v]
    if losses:
        out["steps"] = int(losses[-1][0])
        out["final/train/loss"] = losses[-1][1]
        finite = [v for _, v in losses if math.isfinite(v)]
        out["best/train/loss"] = min(finite) if finite else math.nan
    for _, values in sorted(by_step.items()):
        for key, value in values.items():
            if key != "train/loss":
                out[f"final/{key}"] = value
    return out


def status_of(metrics: dict[str, Any]) -> str:
    loss = metrics.get("final/train/loss")
    return "diverged" if loss is not None and not math.isfinite(loss) else "done"


def run_cell(cell: str, args: list[str], cell_dir: str) -> dict[str, Any]:
    """Train one cell to the end (resuming its newest ``last.ckpt``) and return its row."""
    cell_path = Path(cell_dir)
    cell_path.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    row: dict[str, Any] = {"cell": cell, "mode": "single"}
    try:
        train = load_train()
        ckpt = latest_checkpoint(cell_path)
        resume = ["--ckpt_path", str(ckpt)] if ckpt else []
        train.main([*args, f"--output_dir={cell_path / 'runs'}", "--trainer.enable_progress_bar=false", *resume])
        metrics = read_metrics(cell_path)
        row.update(metrics, status=status_of(metrics))
    except BaseException as err:  # noqa: BLE001 - a cell's failure is its row, never the sweep's
        if isinstance(err, KeyboardInterrupt):
            raise
        cause = err.__cause__ if isinstance(err, SystemExit) and err.__cause__ is not None else err
        message = _first_error(str(cause)) or type(cause).__name__
        row.update(status="failed", error=f"{type(cause).__name__}: {message}"[:2000])
        (cell_path / "error.txt").write_text(traceback.format_exc())
    folders = run_folders(cell_path)
    row["run_dir"] = str(folders[-1]) if folders else str(cell_path)
    row["wall_s"] = round(time.perf_counter() - start, 3)
    write_result(cell_path, row)
    return row


def write_result(cell_dir: Path, row: dict[str, Any]) -> None:
    cell_dir.mkdir(parents=True, exist_ok=True)
    tmp = cell_dir / (RESULT + ".tmp")
    tmp.write_text(json.dumps(row, default=str))
    os.replace(tmp, cell_dir / RESULT)


def read_result(cell_dir: Path) -> dict[str, Any] | None:
    path = cell_dir / RESULT
    if not path.is_file():
        return None
    row = json.loads(path.read_text())
    for key, value in row.items():  # json wrote inf/nan as Infinity/NaN, read back as floats
        if isinstance(value, str) and value in ("inf", "nan", "-inf"):
            row[key] = float(value)
    return row


def _first_error(message: str) -> str:
    """jsonargparse wraps a constructor's error in a Union report; keep the error itself."""
    lines = [ln.strip()[2:] for ln in message.splitlines() if ln.strip().startswith("- ")]
    real = [ln for ln in lines if not ln.startswith("Expected a <class 'NoneType'>")]
    return f"error: {real[0]}" if "Errors:" in message and real else message
