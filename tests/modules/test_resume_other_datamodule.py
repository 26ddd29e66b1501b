"""``Trainer.fit(ckpt_path=...)`` with another DataModule class than the checkpoint's: Lightning
hands our DataModule no entry of its own, so the module finds the other class's training-set
record and the DataModule refuses it (train.py's pre-flight refuses it earlier, same message)."""

from __future__ import annotations

import pytest
import torch

from lit_memo.data import DigitsDataModule, SyntheticDataModule
from lit_memo.modules import ShallowNetModule


def test_fit_resumed_on_another_datamodule_class_is_refused(make_trainer, tmp_path):
    torch.manual_seed(0)
    synthetic = SyntheticDataModule(n=32, d=64, seed=1)  # 64 inputs, one float target: as flat digits
    module = ShallowNetModule(input_shape=synthetic.input_shape, width=8, regime="regular")
    trainer = make_trainer(max_steps=2)
    trainer.fit(module, datamodule=synthetic)
    path = tmp_path / "synthetic.ckpt"
    trainer.save_checkpoint(path)
    assert "training_set" in torch.load(path, weights_only=False)["SyntheticDataModule"]

    digits = DigitsDataModule(subset_size=32, flatten=True, targets="float", seed=0)
    assert digits.input_shape == synthetic.input_shape and digits.num_outputs == 1
    with pytest.raises(ValueError, match="trained on SyntheticDataModule, not DigitsDataModule"):
        make_trainer(max_steps=4).fit(module, datamodule=digits, ckpt_path=path)
