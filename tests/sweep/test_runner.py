"""The local grid runner end to end: table, skipping, failures, batched = alone, SIGTERM + resume."""

from __future__ import annotations

import csv
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from conftest import ROOT
from lit_memo.sweep import load_sweep, run_sweep, summarize
from lit_memo.sweep.spec import cell_id
from lit_memo.sweep.worker import read_metrics, run_cell

TINY_FLAGS = {"trainer.callbacks": [], "wandb_mode": "disabled", "data.init_args.n": 40, "data.init_args.d": 5,
              "data.init_args.batches_per_epoch": 2, "model.init_args.steps_per_batch": 10}
METRICS = ("final/train/loss", "best/train/loss", "steps")


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    torch.set_num_threads(1)  # tiny nets: a second OpenMP thread only waits on a shared machine
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


def write_sweep(path: Path, grid, steps=40, **extra) -> Path:
    spec = {"config": "synthetic_narrow.yaml", "flags": {**TINY_FLAGS, "trainer.max_steps": steps}, "grid": grid, **extra}
    path.write_text(yaml.safe_dump(spec))
    return path


def read_table(path: Path) -> dict[str, dict]:
    with open(path) as f:
        return {r["cell"]: r for r in csv.DictReader(f)}


def test_tiny_grid_writes_table_records_failures_and_skips_finished(tmp_path, monkeypatch):
    """Width 9 is odd, which the mirrored regime refuses: those cells fail, the others finish."""
    sweep = write_sweep(tmp_path / "tiny.yaml", {"model.init_args.width": [8, 9], "model.init_args.lr_hidden": [0.1, 0.05]})
    spec = load_sweep(sweep, tmp_path / "out")
    table = run_sweep(spec, jobs=0, progress=False)
    rows = read_table(tmp_path / "out" / "tiny" / "results.csv")
    assert len(rows) == 4 and rows.keys() == table.rows.keys()
    by = {(int(r["width"]), float(r["lr_hidden"])): r for r in rows.values()}
    for lr in (0.1, 0.05):
        ok, bad = by[(8, lr)], by[(9, lr)]
        assert ok["status"] == "done" and ok["mode"] == "batched" and int(ok["steps"]) == 40
        assert float(ok["final/train/loss"]) >= float(ok["best/train/loss"]) > 0
        assert Path(ok["run_dir"], "metrics.csv").is_file() and Path(ok["run_dir"], "config.yaml").is_file()
        assert bad["status"] == "failed" and "width 9, which is odd" in bad["error"]
    assert by[(8, 0.1)]["final/train/loss"] != by[(8, 0.05)]["final/train/loss"]
    summary = summarize(spec, table)
    assert [(r["width"], r["lr_hidden"]) for r in summary["best_over_lrs"]] == [
        (8, min((0.1, 0.05), key=lambda lr: float(by[(8, lr)]["final/train/loss"])))]  # failed runs have no loss
    # a re-run trains nothing: every cell is finished
    import lit_memo.sweep.runner as runner

    monkeypatch.setattr(runner, "_submit", lambda *a: pytest.fail("a finished cell was run again"))
    before = (tmp_path / "out" / "tiny" / "results.csv").read_text()
    again = run_sweep(load_sweep(sweep, tmp_path / "out"), jobs=0, progress=False)
    assert again.rows.keys() == table.rows.keys()
    assert (tmp_path / "out" / "tiny" / "results.csv").read_text() == before
    # --retry_failed runs exactly the failed cells again
    submitted = []
    monkeypatch.setattr(runner, "_submit", lambda pool, spec, group, *a: submitted.extend(group) or pool.submit(
        lambda: [{"cell": cell_id(c), "status": "failed", "error": "again", "run_dir": ""} for c in group]))
    retried = run_sweep(load_sweep(sweep, tmp_path / "out"), jobs=0, progress=False, retry_failed=True)
    assert sorted((c["model.init_args.width"], c["model.init_args.lr_hidden"]) for c in submitted) == [(9, 0.05), (9, 0.1)]
    assert retried.rows.keys() == table.rows.keys()
    assert {r["status"] for r in retried.rows.values() if r.get("error") == "again"} == {"failed"}


def test_batched_members_equal_runs_through_train_py(tmp_path):
    """Each member of a batched group = the same cell trained alone by train.main (300 steps)."""
    grid = {"model.init_args.lr_hidden": [0.1, 0.3], "seed_everything": [0, 3]}
    sweep = write_sweep(tmp_path / "eq.yaml", grid, steps=300,  # ours: V and mirroring; constrained_regular: a ball that binds
                        zip={"model.init_args.regime": ["ours", "constrained_regular"], "model.init_args.radius": [float("inf"), 0.3]})
    spec = yaml.safe_load(sweep.read_text())
    spec["flags"]["trainer.callbacks"] = [{"class_path": "lit_memo.callbacks.JacobianRankCallback",  # at the end only
                                           "init_args": {"every_n_steps": 1000, "num_probes": 40, "params": ["net.hidden"]}}]
    sweep.write_text(yaml.safe_dump(spec))
    spec = load_sweep(sweep, tmp_path / "out")
    rows = run_sweep(spec, jobs=0, progress=False).rows
    assert {r["mode"] for r in rows.values()} == {"batched"} and len(rows) == 8
    for i, cell in enumerate(spec.cells()[::3]):  # a few of them, alone through train.py
        alone = run_cell(f"alone{i}", spec.train_args(cell), str(tmp_path / f"alone{i}"))
        from lit_memo.sweep.spec import cell_id

        batched = rows[cell_id(cell)]
        assert alone["status"] == batched["status"] == "done"
        # rel 1e-3: the written-out gradient rounds differently from autograd's (the update itself is
        # bitwise torch's SGD), about an ulp per step that GD carries while the loss falls ~5 orders in
        # 300 steps (measured: 1.4e-4 relative on a final loss of 1.4e-6)
        assert float(batched["final/train/loss"]) == pytest.approx(alone["final/train/loss"], rel=1e-3)
        assert float(batched["best/train/loss"]) == pytest.approx(alone["best/train/loss"], rel=1e-3)
        assert float(batched["final/jacobian/sigma_min"]) == pytest.approx(alone["final/jacobian/sigma_min"], rel=1e-3)
        # the whole logged curve, not only its end
        got = read_metrics(Path(batched["run_dir"]).parents[2])
        assert got["final/train/loss"] == pytest.approx(alone["final/train/loss"], rel=1e-3)


def wait_for(predicate, timeout=300.0):
    end = time.time() + timeout
    while time.time() < end:
        try:
            if predicate():
                return True
        except OSError:  # a file or folder the runner is writing vanished mid-scan (an atomic rename): look again
            pass
        time.sleep(0.05)
    return False


@pytest.mark.slow
def test_sigterm_mid_sweep_then_resume_gives_the_uninterrupted_table(tmp_path):
    """Kill the runner (SIGTERM) while a cell is half done; the re-run resumes it from last.ckpt."""
    grid = {"model.init_args.regime": ["ours", "regular"]}
    sweep = write_sweep(tmp_path / "kill.yaml", grid, steps=400, batching="off")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "lit_memo.sweep", str(sweep), "--jobs", "1", "--output_dir", str(tmp_path / "killed"), "--no_progress"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    cells = tmp_path / "killed" / "kill" / "cells"
    table_file = tmp_path / "killed" / "kill" / "results.csv"
    # wait until one cell is finished and the next one has a checkpoint but no result yet
    half_done = lambda: table_file.is_file() and any(  # noqa: E731
        list(c.rglob("last.ckpt")) and not (c / "result.json").exists() for c in cells.iterdir())
    assert wait_for(half_done), proc.communicate()[0].decode()[-3000:]
    proc.send_signal(signal.SIGTERM)
    output = proc.communicate(timeout=60)[0].decode()
    assert proc.returncode == 130, output[-3000:]
    interrupted = read_table(table_file)
    assert len(interrupted) == 1
    resumed_cell = next(c for c in cells.iterdir() if not (c / "result.json").exists() and list(c.rglob("last.ckpt")))
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    resumed = read_table(table_file)
    assert len(list(resumed_cell.rglob("metrics.csv"))) == 2  # the first try's folder and the resumed one
    # the same sweep, never interrupted, in this process
    plain = run_sweep(load_sweep(sweep, tmp_path / "plain"), jobs=0, progress=False).rows
    assert resumed.keys() == plain.keys()
    for cell, row in plain.items():
        assert resumed[cell]["status"] == row["status"] == "done"
        for key in METRICS:
            assert float(resumed[cell][key]) == pytest.approx(float(row[key]), rel=1e-5), (cell, key)


def test_workers_start_with_the_allocator_settings_and_the_parent_keeps_its_environment(tmp_path, monkeypatch):
    """WORKER_MALLOC reaches the spawned workers (glibc reads it at start) and is removed from this process after."""
    import os
    from concurrent.futures import Future

    import lit_memo.sweep.runner as runner

    for key in runner.WORKER_MALLOC:
        monkeypatch.delenv(key, raising=False)
    seen = []

    def submit(pool, spec, group, *a):
        seen.append({key: pool.submit(os.getenv, key).result() for key in runner.WORKER_MALLOC})
        done: Future = Future()
        done.set_result([{"cell": cell_id(c), "status": "failed", "error": "probe", "run_dir": ""} for c in group])
        return done

    monkeypatch.setattr(runner, "_submit", submit)
    sweep = write_sweep(tmp_path / "env.yaml", {"model.init_args.width": [8]})
    run_sweep(load_sweep(sweep, tmp_path / "out"), jobs=1, progress=False, batching="off")
    assert seen == [runner.WORKER_MALLOC]
    assert not any(key in os.environ for key in runner.WORKER_MALLOC)


def test_a_config_that_cannot_batch_is_planned_one_run_per_cell(tmp_path):
    """An image config has no synthetic n: plan() says why it cannot batch (it used to read the data's n
    before looking at the reason, an AttributeError for every non-synthetic sweep)."""
    from lit_memo.sweep.runner import plan

    sweep = tmp_path / "digits.yaml"
    sweep.write_text(yaml.safe_dump({"config": "digits_narrow.yaml", "flags": {"trainer.max_steps": 2, "wandb_mode": "disabled"},
                                     "grid": {"model.init_args.lr_hidden": [0.1, 0.05]}}))
    spec = load_sweep(sweep, tmp_path / "out")
    groups, why = plan(spec, spec.cells(), "auto")
    assert [len(g) for g in groups] == [1, 1] and why.startswith("batched training")
