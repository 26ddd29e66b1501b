"""Every shipped config trains (issue 8): a short run of each configs/*.yaml through train.main on
the real data (a subset where the dataset is large) must log a finite, decreasing training loss.

Configs whose data is absent skip, saying where the DataModule looked. New configs are picked up
by the glob; one that needs a smaller budget (a big model) gets a row in ``BUDGETS``.
"""

from __future__ import annotations

import csv
import fnmatch
import math
from pathlib import Path

import pytest
import yaml

import train
from conftest import ROOT
from lit_memo.preflight import DataNotFound

CONFIGS = sorted(p.name for p in (ROOT / "configs").glob("*.yaml"))
QUIET = ["--trainer.enable_progress_bar=false", "--wandb_mode=disabled", "--run_test=false",
         "--trainer.log_every_n_steps=1"]

# Budgets, first matching row wins. Kinds: "full_batch" (synthetic full_batch, or batch_size null):
# rows = logged batches of the config's own steps_per_batch GD steps; "images" and "synthetic":
# mini-batch SGD on a seeded training subset / a smaller n. A window is the number of logged rows
# averaged at the start and at the end of the run (one epoch for mini-batches).
BUDGETS = [
    # pattern, kind, data flags, logged rows, window
    ("*resnet*", "images", {"subset_size": 32, "batch_size": 32}, 10, 3),  # GD on 32 images: ResNet-18 on a CPU
    # the paper's batch 128: at 64 on 256 digits Adam's second step at lr 0.003 overshoots 2.2x on the 400 all-positive
    # features (1.3x at the config's own size); the configs' header says what removes it and what that costs
    ("ge_mnist_pca*", "images", {"subset_size": 512, "batch_size": 128}, 16, 4),
    ("*", "images", {"subset_size": 256, "batch_size": 64}, 16, 4),
    ("*", "synthetic", {"n": 256, "batch_size": 32}, 80, 8),
    ("*", "full_batch", {}, 12, 3),
]
SYNTHETIC_DATA = ("SyntheticDataModule",)


def read_config(name: str) -> dict:
    return yaml.safe_load((ROOT / "configs" / name).read_text())


def budget(name: str) -> tuple[list[str], int]:
    cfg = read_config(name)
    data_cls = cfg["data"]["class_path"].rsplit(".", 1)[-1]
    data_args = cfg["data"].get("init_args") or {}
    if data_cls in SYNTHETIC_DATA:
        kind = "full_batch" if data_args.get("full_batch", True) else "synthetic"
    else:
        kind = "full_batch" if "batch_size" in data_args and data_args["batch_size"] is None else "images"
    for pattern, row_kind, data_flags, rows, window in BUDGETS:
        if row_kind == kind and fnmatch.fnmatch(name, pattern):
            break
    steps_per_batch = (cfg["model"].get("init_args") or {}).get("steps_per_batch", 1)
    flags = [f"--data.init_args.{k}={v}" for k, v in data_flags.items()]
    flags += [f"--trainer.max_steps={rows * steps_per_batch}", "--trainer.max_epochs=-1"]
    if kind == "images":
        flags.append("--data.init_args.num_workers=0")
    return flags, window


def train_losses(run: Path) -> list[float]:
    with open(run / "metrics.csv") as f:
        return [float(r["train/loss"]) for r in csv.DictReader(f) if r.get("train/loss")]


@pytest.mark.slow
@pytest.mark.parametrize("name", CONFIGS)
def test_config_trains(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    flags, window = budget(name)
    args = ["--config", name, *flags, *QUIET, f"--output_dir={tmp_path / 'runs'}"]
    try:  # data presence first (build_cli locates and sets up the data): a missing dataset is a skip
        train.build_cli(args + [f"--output_dir={tmp_path / 'probe'}"])
    except DataNotFound as err:
        pytest.skip(f"{name}: data absent: {err}")
    train.main(args)
    (run,) = (p.parent for p in (tmp_path / "runs").glob("*/*/metrics.csv"))
    losses = train_losses(run)
    assert len(losses) >= 2 * window, losses
    assert all(math.isfinite(v) for v in losses), f"{name}: non-finite loss {losses}"
    start, end = sum(losses[:window]) / window, sum(losses[-window:]) / window
    assert end < start, f"{name}: the loss did not decrease ({start:.4g} -> {end:.4g}): {losses}"
    assert max(losses) < 2 * losses[0], f"{name}: the loss blew up: {losses}"
