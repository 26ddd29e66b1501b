"""The diagnostic callbacks under 2-process CPU DDP: every key exactly once per logging step in
the CSV, and the same final weights as a DDP run without them (issue 3)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from diagnostics_fit import EVERY, KEYS, MAX_STEPS, read_metrics, steps_logged

SCRIPT = Path(__file__).with_name("diagnostics_fit.py")
ROOT = SCRIPT.parents[2]


def _run_ddp(out: Path, callbacks: bool) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}  # two ranks on two cores
    env.pop("LOCAL_RANK", None)
    cmd = [sys.executable, str(SCRIPT), str(out), "--ddp"] + (["--callbacks"] if callbacks else [])
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


@pytest.mark.slow
def test_ddp_logs_each_key_once_per_step_and_keeps_the_weights(tmp_path):
    _run_ddp(tmp_path / "with", callbacks=True)
    _run_ddp(tmp_path / "without", callbacks=False)
    rows = read_metrics(tmp_path / "with")
    schedule = [0, EVERY, 2 * EVERY, MAX_STEPS]
    for group, keys in KEYS.items():
        for key in keys:
            assert steps_logged(rows, key) == (schedule[1:] if group == "constraint_active" else schedule), key
    with_cb = torch.load(tmp_path / "with" / "final.pt")
    without = torch.load(tmp_path / "without" / "final.pt")
    assert all(torch.equal(with_cb[k], without[k]) for k in without)
