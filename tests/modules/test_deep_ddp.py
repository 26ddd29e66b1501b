"""DDP with two CPU processes on the deep families: identical parameters and anchors on both ranks."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from conftest import ROOT

CASES = {
    "mlp": ["--config", "mnist_mlp_narrow.yaml", "--data.init_args.subset_size=16", "--data.init_args.batch_size=4"],
    "resnet": ["--config", "resnet18_narrow.yaml", "--model.init_args.layer4_width=16",
               "--data.init_args.subset_size=8", "--data.init_args.batch_size=2"],
}


@pytest.mark.slow
@pytest.mark.parametrize("family", CASES)
def test_ddp_two_cpu_processes_agree(family, data_root, tmp_path):
    """Rank 1 starts from perturbed weights (tests/ddp_worker.py): DDP broadcasts rank 0's, so anchors
    and trained weights agree bitwise; the small radius makes every rank project on every step.
    (SyncBatchNorm needs GPUs: on CPU BatchNorm statistics are per rank, buffers broadcast from rank 0.)"""
    args = [*CASES[family], f"--data.init_args.data_dir={data_root}", "--model.init_args.radius=0.05",
            "--trainer.max_steps=3", "--trainer.callbacks=[]", "--trainer.enable_progress_bar=false",
            "--wandb_mode=disabled", "--trainer.strategy=ddp", "--trainer.devices=2", "--trainer.accelerator=cpu",
            f"--output_dir={tmp_path / 'runs'}"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("LIT_MEMO_RUN_DIR", None)
    subprocess.run([sys.executable, str(ROOT / "tests" / "ddp_worker.py"), str(tmp_path), *args],
                   check=True, cwd=tmp_path, env=env, timeout=600)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1))
    assert r0["global_step"] == r1["global_step"] == 3
    for k in r0["params"]:
        assert torch.equal(r0["start"][k], r1["start"][k]), k
        assert torch.equal(r0["params"][k], r1["params"][k]), k
    assert r0["anchors"].keys() == r1["anchors"].keys() == {"hidden"}
    block = "net.layer4." if family == "resnet" else "net.hidden.1."
    start = [v for k, v in r0["start"].items() if k.startswith(block)]
    assert len(start) == len(r0["anchors"]["hidden"])
    for a0, a1, s in zip(r0["anchors"]["hidden"], r1["anchors"]["hidden"], start):
        assert torch.equal(a0, a1) and torch.equal(a0, s)
    trained = [v for k, v in r0["params"].items() if k.startswith(block)]
    distance = torch.cat([(p.double() - a.double()).flatten() for p, a in zip(trained, start)]).norm().item()
    assert 0.05 * (1 - 1e-4) <= distance <= 0.05 * (1 + 1e-6)  # moved out to the sphere, projected back
