"""Step-based checkpoints with steps_per_batch K: StepCheckpoint saves at the first batch end at or past
each multiple of N; a plain ModelCheckpoint that would skip multiples is refused before training
(issue 7, point 12)."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint

from lit_memo.callbacks import StepCheckpoint
from lit_memo.data import SyntheticDataModule
from lit_memo.modules import ShallowNetModule


class CountingModule(ShallowNetModule):
    batches = 0

    def training_step(self, batch, batch_idx):
        self.batches += 1
        return super().training_step(batch, batch_idx)


def _fit(make_trainer, tmp_path: Path, checkpoint: ModelCheckpoint, max_steps: int, steps_per_batch: int = 4,
         ckpt_path: str | None = None) -> CountingModule:
    pl.seed_everything(0)
    model = CountingModule(width=8, input_shape=(3,), steps_per_batch=steps_per_batch, regime="regular")
    data = SyntheticDataModule(n=8, d=3, batches_per_epoch=100)
    make_trainer(max_steps=max_steps, callbacks=[checkpoint], enable_checkpointing=True).fit(model, data, ckpt_path=ckpt_path)
    return model


def _saved_steps(folder: Path) -> list[int]:
    return sorted(torch.load(f, weights_only=False)["global_step"] for f in folder.glob("*.ckpt"))


def test_saves_at_the_first_batch_end_past_each_multiple_and_after_a_resume(make_trainer, tmp_path):
    # K = 4: batches end at 4, 8, 12, ..., 28 and 30 (max_steps); N = 10 is passed at 12, 20 and 30
    folder = tmp_path / "ckpt"
    checkpoint = StepCheckpoint(dirpath=folder, filename="{step}", every_n_train_steps=10, save_top_k=-1)
    _fit(make_trainer, tmp_path, checkpoint, max_steps=30)
    assert _saved_steps(folder) == [12, 20, 30]
    assert sorted(f.name for f in folder.glob("*.ckpt")) == ["step=12.ckpt", "step=20.ckpt", "step=30.ckpt"]
    # resumed at 30 (not a multiple of K): batches end at 34, 38, 42, 45; 40 is passed at 42
    resumed = StepCheckpoint(dirpath=folder, filename="{step}", every_n_train_steps=10, save_top_k=-1)
    _fit(make_trainer, tmp_path, resumed, max_steps=45, ckpt_path=str(folder / "step=30.ckpt"))
    assert _saved_steps(folder) == [12, 20, 30, 42]


def test_one_step_per_batch_saves_exactly_at_the_multiples_like_model_checkpoint(make_trainer, tmp_path):
    for name, cls in (("step", StepCheckpoint), ("plain", ModelCheckpoint)):
        _fit(make_trainer, tmp_path, cls(dirpath=tmp_path / name, filename="{step}", every_n_train_steps=3, save_top_k=-1),
             max_steps=10, steps_per_batch=1)
    assert _saved_steps(tmp_path / "step") == _saved_steps(tmp_path / "plain") == [3, 6, 9]


def test_a_plain_model_checkpoint_that_would_skip_multiples_is_refused_before_training(make_trainer, tmp_path):
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=10, save_top_k=-1)
    with pytest.raises(ValueError, match=r"every_n_train_steps=10.*steps_per_batch=4.*4, 8, \.\.\..*StepCheckpoint"
                                         r".*multiple of 4"):
        _fit(make_trainer, tmp_path, checkpoint, max_steps=30)
    assert not (tmp_path / "ckpt").exists()


def test_a_plain_model_checkpoint_on_batch_boundaries_is_kept(make_trainer, tmp_path):
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", filename="{step}", every_n_train_steps=8, save_top_k=-1)
    model = _fit(make_trainer, tmp_path, checkpoint, max_steps=20)
    assert model.batches == 5 and _saved_steps(tmp_path / "ckpt") == [8, 16]
