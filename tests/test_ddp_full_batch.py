"""DDP full-batch GD is exact when the device count does not divide n, and logs the full-batch loss
(issue 8): 3 CPU processes (gloo) on n = 500 against one process, through train.py's CLI."""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import pytest
import torch

from conftest import ROOT

QUIET = ["--trainer.enable_progress_bar=false", "--wandb_mode=disabled", "--run_test=false", "--trainer.callbacks=[]"]


def run(out, args, extra):
    out.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    env.pop("LIT_MEMO_RUN_DIR", None)
    subprocess.run([sys.executable, str(ROOT / "tests" / "ddp_worker.py"), str(out), *args, *extra,
                    f"--output_dir={out / 'runs'}"], check=True, cwd=out, env=env, timeout=400)
    (metrics,) = out.glob("runs/*/*/metrics.csv")
    with open(metrics) as f:
        rows = [r for r in csv.DictReader(f) if r.get("train/loss")]
    logged = {int(float(r["step"])): {k: float(v) for k, v in r.items() if k.startswith("train/")} for r in rows}
    return logged, [torch.load(p, weights_only=False) for p in sorted(out.glob("rank*.pt"))]


def single_and_ddp(tmp_path, args, devices, steps):
    """One process and ``devices`` CPU processes on the same args; both took ``steps`` GD steps to the
    same weights. Returns (single log, single state, DDP log, the ranks' states)."""
    single_log, (single,) = run(tmp_path / "single", args, [])
    ddp_log, ranks = run(tmp_path / "ddp", args, ["--trainer.strategy=ddp", f"--trainer.devices={devices}",
                                                 "--trainer.accelerator=cpu"])
    assert len(ranks) == devices and all(r["global_step"] == steps for r in ranks)
    for k, w in single["params"].items():
        for r in ranks:
            assert torch.allclose(r["params"][k], w, rtol=0, atol=2e-6), k
    return single_log, single, ddp_log, ranks


@pytest.mark.slow
@pytest.mark.parametrize("config,steps_per_batch", [
    (["--config", "synthetic_narrow.yaml"], 1),  # automatic optimization, one GD step per batch
    (["--config", "digits_narrow.yaml", "--data.init_args.subset_size=500"], 5),  # image data, several steps per batch
], ids=["synthetic-automatic", "digits-multi_step"])
def test_three_processes_on_500_samples_equal_one_process(tmp_path, config, steps_per_batch):
    args = [*config, "--trainer.max_steps=20", f"--model.init_args.steps_per_batch={steps_per_batch}",
            "--trainer.log_every_n_steps=1", *QUIET]
    # shards of 167, 167 and 166 samples: equal-weight gradient averaging would be off by ~1e-4 here
    single_log, _, ddp_log, _ = single_and_ddp(tmp_path, args, devices=3, steps=20)
    # the logged loss is the whole batch's, at every logged step, and so is its running best
    assert sorted(ddp_log) == sorted(single_log) and len(single_log) >= 4
    for step, row in single_log.items():
        assert ddp_log[step]["train/loss"] == pytest.approx(row["train/loss"], rel=1e-5), step
        assert ddp_log[step]["train/loss_best"] == pytest.approx(row["train/loss_best"], rel=1e-5), step
    losses = [single_log[s]["train/loss"] for s in sorted(single_log)]
    assert [single_log[s]["train/loss_best"] for s in sorted(single_log)] == [min(losses[:i + 1]) for i in range(len(losses))]


@pytest.mark.slow
def test_two_processes_sync_only_on_logging_steps(tmp_path):
    """2 processes on 101 digits (shards of 51 and 50), one GD step per batch, a row every 4th step:
    the same weights as one process, the same train/loss, train/loss_best and train/acc (the whole
    batch's, not rank 0's shard), and no collective on the steps in between (the shards' sizes are
    gathered once, at the first step), so a step costs only DDP's own gradient all-reduce."""
    args = ["--config", "digits_narrow.yaml", "--data.init_args.subset_size=101", "--model.init_args.steps_per_batch=1",
            "--trainer.max_steps=12", "--trainer.log_every_n_steps=4", *QUIET]
    single_log, single, ddp_log, ranks = single_and_ddp(tmp_path, args, devices=2, steps=12)
    # one batch per epoch (full batch): Lightning's step column is the batch index
    assert sorted(ddp_log) == sorted(single_log) == [3, 7, 11]
    accs = [single_log[s]["train/acc"] for s in sorted(single_log)]
    assert len(set(accs)) > 1, "the accuracy must move, or comparing it shows little"
    for step, row in single_log.items():
        assert ddp_log[step]["train/loss"] == pytest.approx(row["train/loss"], rel=1e-5), step
        assert ddp_log[step]["train/loss_best"] == pytest.approx(row["train/loss_best"], rel=1e-5), step
        assert ddp_log[step]["train/acc"] == row["train/acc"], step  # correct counts summed over the ranks
    for r in ranks:
        counts = r["collectives"]
        assert len(counts) == 12 and counts[0] >= 1
        assert all(counts[i] > 0 for i in single_log)  # the logged steps reduce loss and accuracy
        assert [i for i, c in enumerate(counts[1:], 1) if c and i not in single_log] == [], counts
    assert single["collectives"] == [0] * 12
