"""Runs as the report sees them: a flat set of parameters, final metric values and curves.

Two sources give the same :class:`Run`:

- a run folder written by ``train.py`` (``config.yaml`` + ``metrics.csv`` from the CSV logger);
- a row of a sweep table (``lit_memo.sweep``'s results table, or any CSV with one row per
  run). Columns whose name holds a ``/`` are final metric values, ``final/train/loss`` read as
  ``train/loss`` (the sweep's name for the last value); every other column is a parameter, a
  dotted name (``model.init_args.width``) counting by its last part (``width``). A ``run_dir``
  column naming an existing run folder brings that run's curves along.

Parameters use the config's short names (``width``, ``radius``, ``regime``, ``n``, ``d``,
``activation``, ``random_labels``; ``seed`` is ``seed_everything``), so both sources meet.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional

import numpy as np
import yaml

STEP = "step"  # the GD-step column of metrics.csv (lit_memo.modules.base logs it with every row)
RUN_DIR_COLUMNS = ("run_dir", "dir", "path")
FINAL = "final/"  # lit_memo.sweep's prefix for a metric's last value
# a sweep table's bookkeeping columns: kept in params, never a difference worth a legend entry
BOOKKEEPING = ("cell", "status", "mode", "run_dir", "error", "wall_s", "steps", "group_size", "train_s_shared",
               "compile_s", "data_seed")


@dataclass
class Run:
    """One training run: where it came from, its parameters, its final metrics, its curves."""

    source: str
    params: dict[str, Any]
    final: dict[str, float]
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    def get(self, key: str, default: Any = None) -> Any:
        return self.params.get(key, default)


class NoRunsError(ValueError):
    """Raised when the inputs hold no run: the report has nothing to draw."""


# -- run folders -----------------------------------------------------------------------------
def read_metrics(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``metrics.csv`` -> metric name -> (GD steps, values), sorted by step, empty cells skipped."""
    series: dict[str, list[tuple[float, float]]] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            step = _float(row.get(STEP))
            for key, value in row.items():
                x = _float(value)
                if key in (STEP, None) or x is None or step is None:
                    continue
                series.setdefault(key, []).append((step, x))
    out = {}
    for key, points in series.items():
        points.sort(key=lambda p: p[0])  # stable: rows logged at one step keep their order
        arr = np.asarray(points, dtype=float)
        out[key] = (arr[:, 0], arr[:, 1])
    return out


def flatten_config(cfg: dict) -> dict[str, Any]:
    """A LightningCLI config -> short parameter names (model's win over data's on a clash)."""
    params: dict[str, Any] = {"seed": cfg.get("seed_everything")}
    trainer = cfg.get("trainer") or {}
    for key in ("max_steps", "max_epochs"):
        if trainer.get(key) not in (None, -1):
            params[key] = trainer[key]
    for section in ("data", "model"):
        block = cfg.get(section) or {}
        if "class_path" in block:
            params[section] = str(block["class_path"]).rsplit(".", 1)[-1]
        for key, value in (block.get("init_args") or {}).items():
            if isinstance(value, dict) and isinstance(value.get("init_args"), dict):  # optimizer, lr_scheduler
                params[key] = str(value.get("class_path", "")).rsplit(".", 1)[-1]
                params.update({f"{key}_{k}": v for k, v in value["init_args"].items()
                               if isinstance(v, (str, int, float, bool)) and v is not None})
                continue
            if isinstance(value, list) and all(isinstance(v, (int, float)) for v in value):
                value = tuple(value)  # e.g. the MLP's hidden_widths
            if isinstance(value, (str, int, float, bool, tuple)) or value is None:
                params["data_seed" if (section, key) == ("data", "seed") else key] = value
    return normalise(params)


def normalise(params: dict[str, Any]) -> dict[str, Any]:
    """Radius as a float with inf for "no ball" (regime regular never has one)."""
    out = dict(params)
    if "seed_everything" in out:
        out["seed"] = out.pop("seed_everything")
    if "regime" in out:
        r = out.get("radius")
        out["radius"] = math.inf if out["regime"] == "regular" or r in (None, "", "inf", "None") else float(r)
    return out


def load_run_dir(run_dir: Path) -> Run:
    with open(run_dir / "config.yaml") as f:
        cfg = yaml.safe_load(f) or {}
    curves = read_metrics(run_dir / "metrics.csv")
    final = {key: float(values[-1]) for key, (_, values) in curves.items() if len(values)}
    params = flatten_config(cfg)
    summary = run_dir / "summary.json"  # train.py's closing summary: the run's wall time
    if summary.is_file():
        params["wall_s"] = json.loads(summary.read_text()).get("wall_seconds")
    return Run(str(run_dir), params, final, curves)


def is_run_dir(folder: Path) -> bool:
    """Whether ``folder`` is a run folder: it holds both metrics.csv and config.yaml."""
    return (folder / "metrics.csv").is_file() and (folder / "config.yaml").is_file()


def find_run_dirs(root: Path) -> list[Path]:
    """Every run folder under ``root`` (itself included)."""
    return sorted(p.parent for p in root.rglob("metrics.csv") if is_run_dir(p.parent))


# -- sweep tables ----------------------------------------------------------------------------
def load_table(path: Path) -> list[Run]:
    """One :class:`Run` per row of a sweep table (see the module docstring for the columns)."""
    runs = []
    with open(path, newline="") as f:
        for i, row in enumerate(csv.DictReader(f)):
            params, final, curves = {}, {}, {}
            for key, value in row.items():
                if key is None:
                    continue
                if "/" in key:
                    x = _float(value)
                    if x is not None:
                        final[key.removeprefix(FINAL)] = x
                else:
                    params[key.rsplit(".", 1)[-1]] = _parse(value)
            folder = _run_folder(path, next((row[c] for c in RUN_DIR_COLUMNS if row.get(c)), None))
            if folder is not None:
                # the folder fills what the table lacks (sigma_min, n, d, ...); the table's own cells win
                run = load_run_dir(folder)
                params, final, curves = {**run.params, **params}, {**run.final, **final}, run.curves
            runs.append(Run(f"{path}:{i + 2}", normalise(params), final, curves))
    return runs


def _run_folder(table: Path, run_dir: Optional[str]) -> Optional[Path]:
    """A row's run folder: absolute, relative to the table's folder, or relative to the working
    directory the sweep ran from (the runner writes paths as it was given them)."""
    if not run_dir:
        return None
    candidates = [Path(run_dir)] if Path(run_dir).is_absolute() else [table.parent / run_dir, Path(run_dir)]
    return next((c for c in candidates if is_run_dir(c)), None)


def load_runs(inputs: Iterable[str | Path]) -> list[Run]:
    """Runs from run folders (searched recursively) and sweep tables (``.csv`` files).

    Raises :class:`NoRunsError` naming the input that holds none.
    """
    runs: list[Run] = []
    for item in map(Path, inputs):
        if item.is_file() and item.suffix == ".csv":
            found = load_table(item)
        elif item.is_dir():
            found = [load_run_dir(d) for d in find_run_dirs(item)]
        else:
            raise NoRunsError(f"{item}: no such run folder or sweep table (.csv)")
        if not found:
            raise NoRunsError(f"{item}: holds no runs (no folder with config.yaml + metrics.csv, or an empty table)")
        runs.extend(found)
    if not runs:
        raise NoRunsError("no inputs given: pass run folders or sweep tables")
    return runs


def write_table(runs: list[Run], path: Path, metrics: Optional[list[str]] = None) -> Path:
    """The runs' parameters and final metrics as a sweep table that :func:`load_table` reads back."""
    pkeys = sorted({k for r in runs for k in r.params})
    mkeys = metrics or sorted({k for r in runs for k in r.final})
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["run_dir", *pkeys, *mkeys])
        for r in runs:
            writer.writerow([r.source, *(r.params.get(k, "") for k in pkeys),
                             *(repr(r.final[k]) if k in r.final else "" for k in mkeys)])
    return path


def _float(value: Any) -> Optional[float]:
    if value in (None, ""):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _parse(value: str) -> Any:
    """A table cell as the config would hold it: number, bool, None or string."""
    if value in ("", "None", "null"):
        return None
    if value in ("True", "true", "False", "false"):
        return value in ("True", "true")
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return value
