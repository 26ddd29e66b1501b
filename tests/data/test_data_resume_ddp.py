"""Random labels fixed for the whole run: identical on two DDP ranks and after a resume (train.py end to end)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

import train

ROOT = Path(__file__).resolve().parents[2]
COMMON = ["--config", "digits_narrow.yaml", "--data.init_args.random_labels=true", "--data.init_args.seed=7",
          "--trainer.enable_progress_bar=false", "--wandb_mode=disabled", "--run_test=false"]


@pytest.mark.slow
def test_random_labels_survive_resume_and_a_changed_seed_is_refused(tmp_path):
    first = train.main([*COMMON, "--trainer.max_steps=20", f"--output_dir={tmp_path}"])
    labels = first.datamodule.train_targets.clone()
    assert (labels != first.datamodule.true_targets).float().mean() > 0.8
    (ckpt,) = tmp_path.glob("digits_narrow/*/checkpoints/last.ckpt")
    saved = torch.load(ckpt, weights_only=False)["DigitsDataModule"]
    assert saved["training_set"]["fingerprint"] == first.datamodule.training_set_fingerprint()
    resumed = train.main([*COMMON, "--trainer.max_steps=40", f"--ckpt_path={ckpt}", f"--output_dir={tmp_path}"])
    assert resumed.trainer.global_step == 40
    assert torch.equal(resumed.datamodule.train_targets, labels)
    with pytest.raises((ValueError, SystemExit), match="differ from those the checkpoint was trained on"):
        train.main([*COMMON[:-1], "--data.init_args.seed=8", "--trainer.max_steps=40", f"--ckpt_path={ckpt}",
                    f"--output_dir={tmp_path}"])


@pytest.mark.slow
def test_random_labels_identical_on_two_ddp_ranks(tmp_path):
    args = [*COMMON[:-1], "--trainer.max_steps=2", "--model.init_args.steps_per_batch=1",
            "--data.init_args.batch_size=100", "--trainer.strategy=ddp", "--trainer.devices=2",
            "--trainer.accelerator=cpu", f"--output_dir={tmp_path / 'runs'}"]
    subprocess.run([sys.executable, str(ROOT / "tests" / "data" / "ddp_labels_worker.py"), str(tmp_path), *args],
                   check=True, cwd=ROOT, timeout=300)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1))
    assert r0["digest"] == r1["digest"]
    assert torch.equal(r0["indices"], r1["indices"]) and torch.equal(r0["targets"], r1["targets"])
    assert (r0["targets"] != r0["true"]).float().mean() > 0.8
    # Lightning shards the in-memory training set: the ranks see disjoint halves of it
    assert r0["sampler"] == "DistributedSampler" and len(r0["shard"]) == len(r1["shard"]) == 750
    assert not set(r0["shard"]) & set(r1["shard"])
