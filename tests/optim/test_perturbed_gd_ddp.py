"""PerturbedGD under DDP equals one process: 2 CPU processes (gloo) against one, through train.py.

Ge et al.'s synthetic config (n = 50 full batch, shards of 25) with direct constants chosen so
that within 400 steps the run perturbs 7 times and its stopping rule fires (at step 216, by a
margin of 7e-4 in the loss): every decision (when to perturb, what to draw, when to stop) must be
the same on both ranks and as on one process, or the weights would differ.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from conftest import ROOT

PGD = "--model.init_args.optimizer.init_args."
ARGS = ["--config", "ge_synthetic_quadratic.yaml", "--trainer.max_steps=400", f"{PGD}g_thres=1.0", f"{PGD}t_thres=30",
        f"{PGD}radius=0.01", f"{PGD}f_thres=0.02", "--trainer.enable_progress_bar=false", "--wandb_mode=disabled",
        "--run_test=false", "--trainer.callbacks=[]"]


def run(out, extra: list[str]) -> list[dict]:
    out.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    env.pop("LIT_MEMO_RUN_DIR", None)
    subprocess.run([sys.executable, str(ROOT / "tests" / "optim" / "pgd_ddp_worker.py"), str(out), *ARGS, *extra,
                    f"--output_dir={out / 'runs'}"], check=True, cwd=out, env=env, timeout=400)
    return [torch.load(p, weights_only=False) for p in sorted(out.glob("rank*.pt"))]


@pytest.mark.slow
def test_two_processes_perturb_and_stop_as_one_process(tmp_path):
    (single,) = run(tmp_path / "single", [])
    ranks = run(tmp_path / "ddp", ["--trainer.strategy=ddp", "--trainer.devices=2", "--trainer.accelerator=cpu"])
    # the scenario the test is for: several perturbations and a stop before max_steps
    assert single["stopped"] and single["perturbations"] >= 2 and single["global_step"] < 400
    assert len(ranks) == 2
    for r in ranks:
        for key in ("stopped", "perturbations", "t", "t_noise", "global_step"):
            assert r[key] == single[key], key
        assert r["remembered_loss"] == pytest.approx(single["remembered_loss"], rel=1e-6)
        for k, w in single["params"].items():  # the remembered point, reached through 7 perturbations
            assert torch.allclose(r["params"][k], w, rtol=0, atol=1e-6), k
    # the ranks hold the very same weights (the same draws and steps, not merely close ones)
    for k in single["params"]:
        assert torch.equal(ranks[0]["params"][k], ranks[1]["params"][k]), k


@pytest.mark.parametrize("strategy", ["FSDPStrategy", "DeepSpeedStrategy"])
def test_sharded_strategies_are_refused(strategy):
    """A rank of FSDP or DeepSpeed holds a shard of the parameters: its ball and gradient norm would
    be its own. DDP (full copies) is accepted."""
    from types import SimpleNamespace

    import pytorch_lightning.strategies as strategies

    from lit_memo.callbacks import PerturbedGDCallback
    from lit_memo.optim import PerturbedGD

    opt = PerturbedGD([torch.nn.Parameter(torch.zeros(3))], lr=0.1, radius=0.1, g_thres=0.1, f_thres=0.1, t_thres=2)
    cls = getattr(strategies, strategy)
    fake = SimpleNamespace(optimizers=[opt], world_size=2, strategy=cls.__new__(cls))
    with pytest.raises(RuntimeError, match=f"not under {strategy}; set trainer.strategy: ddp"):
        PerturbedGDCallback().on_train_start(fake, None)
    ddp = strategies.DDPStrategy.__new__(strategies.DDPStrategy)
    PerturbedGDCallback().on_train_start(SimpleNamespace(optimizers=[opt], world_size=2, strategy=ddp), None)
