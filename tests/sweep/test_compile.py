"""The modules' ``compile`` option: torch.compile of forward + loss gives eager's results."""

from __future__ import annotations

import csv

import pytest
import torch

import train

TINY = ["--config", "synthetic_narrow.yaml", "--trainer.callbacks=[]", "--trainer.max_steps=60", "--wandb_mode=disabled",
        "--trainer.enable_progress_bar=false", "--data.init_args.n=40", "--data.init_args.d=5",
        "--model.init_args.width=8", "--model.init_args.steps_per_batch=10", "--data.init_args.batches_per_epoch=3"]


@pytest.mark.slow  # compiling takes 10-30 s on a shared 2-core CPU
def test_compiled_training_equals_eager_and_reports_compile_time(tmp_path):
    eager = train.main([*TINY, f"--output_dir={tmp_path / 'eager'}"])
    compiled = train.main([*TINY, f"--output_dir={tmp_path / 'compiled'}", "--model.init_args.compile=true"])
    assert eager.model.compile_seconds is None and compiled.model.compile_seconds > 0
    for a, b in zip(eager.model.parameters(), compiled.model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    with open(compiled.run_dir / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    logged = [float(r["compile/seconds"]) for r in rows if r.get("compile/seconds")]
    assert logged == [pytest.approx(compiled.model.compile_seconds)]  # once, apart from the steps
    losses = [float(r["train/loss"]) for r in rows if r.get("train/loss")]
    assert len(losses) == 6 and losses[-1] < losses[0]
