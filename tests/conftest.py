"""Shared test set-up: CPU only, no W&B service, outputs under tmp_path, global state restored."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # train.py lives at the top level, next to lit_memo/
    sys.path.insert(0, str(ROOT))
# tests run commands from temporary folders: a relative LIT_MEMO_DATA (../shared/data) must not
# silently turn into "data absent" there
if os.environ.get("LIT_MEMO_DATA"):
    os.environ["LIT_MEMO_DATA"] = str(Path(os.environ["LIT_MEMO_DATA"]).resolve())


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    """No W&B network or service, no inherited run folder, torch settings restored after each test."""
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.delenv("LIT_MEMO_RUN_DIR", raising=False)
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    yield
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic)


@pytest.fixture
def data_root() -> Path:
    """The real offline data (``LIT_MEMO_DATA``, e.g. ../shared/data); skips the test without it."""
    root = os.environ.get("LIT_MEMO_DATA")
    if not root or not Path(root).is_dir():
        pytest.skip("LIT_MEMO_DATA is not set to the offline data folder (e.g. ../shared/data)")
    return Path(root)


@pytest.fixture
def make_trainer(tmp_path):
    """A quiet CPU Trainer writing under tmp_path; keyword arguments override the defaults."""
    import pytorch_lightning as pl

    def make(**overrides) -> "pl.Trainer":
        kwargs = dict(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, num_sanity_val_steps=0, default_root_dir=str(tmp_path))
        kwargs.update(overrides)
        return pl.Trainer(**kwargs)

    return make


def assert_inside_and_fixed_point(module) -> None:
    """Every constraint group lies in its set, and one more projection changes no bit."""
    from lit_memo.optim import ball_distance, in_outer_set

    groups = module.constraint_groups()
    assert groups, "the module declares no constraint"
    for name, group in groups.items():
        if group.needs_anchor:
            assert ball_distance(group.params, module.anchors_for(name)) <= group.radius * (1 + 1e-5), name
        else:
            assert in_outer_set(group.param, group.zeta, group.gamma, rtol=1e-5), name
    before = [p.detach().clone() for p in module.parameters()]
    moved = module.project_constraints_()
    assert not any(moved.values()), moved
    assert all(torch.equal(a, b) for a, b in zip(before, module.parameters()))
