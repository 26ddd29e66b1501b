"""Sweeps over any config key: a resumable local grid runner, batched training of small nets,
W&B sweep files, and the summary queries of Zhang et al. (2021) Fig. 4. See README "Sweeps"."""

from lit_memo.sweep.runner import run_sweep
from lit_memo.sweep.spec import SweepSpec, load_sweep
from lit_memo.sweep.summary import summarize
from lit_memo.sweep.wandb_sweep import wandb_sweeps, write_wandb_sweeps

__all__ = ["SweepSpec", "load_sweep", "run_sweep", "summarize", "wandb_sweeps", "write_wandb_sweeps"]
