"""What a batched group keeps on disk, for both batched trainers (``group.py``, ``group_quadratic.py``):
its resumable state (``group_state.pt``, saved as train.py saves ``last.ckpt``) and each member's
run folder written the way train.py's would be (resolved ``config.yaml``, the loggers' metrics)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

import torch

STATE = "group_state.pt"


def resume(trainer, group_path: Path, keys: list[str]) -> None:
    """Load the group's saved state into ``trainer`` when a previous try of the same members left one."""
    state_path = group_path / STATE
    if state_path.is_file():
        state = torch.load(state_path, weights_only=False)
        if state.get("keys") == list(keys):  # the same members as last time: resume
            trainer.load_state_dict(state)


def save(trainer, group_path: Path, keys: list[str]) -> None:
    """Write the trainer's state atomically (a kill mid-write leaves the previous one)."""
    state_path = group_path / STATE
    tmp = state_path.with_suffix(".tmp")
    torch.save({**trainer.state_dict(), "keys": list(keys)}, tmp)
    os.replace(tmp, state_path)


def write_run(cli, metrics: Iterable[tuple[int, dict[str, float]]]) -> Path:
    """The member's run folder as train.py leaves it: its config and the (step, values) it logged,
    through the run's own loggers (CSV, W&B); returns the folder."""
    run_dir = Path(cli.run_dir)
    cli.parser.save(cli.config, str(run_dir / "config.yaml"), skip_none=False, overwrite=True, multifile=False)
    metrics = list(metrics)
    for logger in cli.trainer.loggers:
        for step, values in metrics:
            logger.log_metrics(values, step=step)
        logger.finalize("success")  # writes the CSV, closes a W&B run
    return run_dir

