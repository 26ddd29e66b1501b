"""Evaluate fixed weights on uneven splits, on 1 process or under 2-process CPU DDP (not a test module).

``python eval_ddp_fit.py OUT`` runs under DDP (the launcher re-runs this file) and writes OUT/metrics.pt
from rank 0; the tests call :func:`evaluate` with ``devices=1`` for the reference. The optimizer's
learning rate is 0, so fit (with its validation) changes no weight and every run sees the same model.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import pytorch_lightning as pl  # noqa: E402
import torch  # noqa: E402

from lit_memo.data import DigitsDataModule, SyntheticDataModule  # noqa: E402
from lit_memo.modules import ShallowNetModule  # noqa: E402

# digits: 297 test and 101 validation images (both odd); batch 148 gives rank 0 two test batches
# (148 + 1) and rank 1 one (148), so the shards differ in size and in number of batches
DIGITS = dict(test_size=297, val_size=101, subset_size=64, batch_size=148, flatten=True)
SYNTHETIC = dict(n=16, d=5, n_test=7, batches_per_epoch=1)


def frozen_sgd(groups):
    return torch.optim.SGD(groups, lr=0.0)


def evaluate(devices: int) -> dict[str, dict[str, float]]:
    pl.seed_everything(0)
    trainer_kwargs = dict(accelerator="cpu", devices=devices, strategy="ddp" if devices > 1 else "auto",
                          logger=False, enable_checkpointing=False, enable_progress_bar=False,
                          enable_model_summary=False, num_sanity_val_steps=0)
    data = DigitsDataModule(**DIGITS)
    model = ShallowNetModule(width=32, input_shape=(64,), num_outputs=10, task="classification", regime="regular",
                             optimizer=frozen_sgd)
    trainer = pl.Trainer(max_steps=1, **trainer_kwargs)
    trainer.fit(model, data)  # one step at lr 0, then validation on the 101 held-out images
    out = {"digits_val": {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}}
    (out["digits_test"],) = trainer.test(model, data, verbose=False)
    pl.seed_everything(0)
    synthetic = ShallowNetModule(width=8, input_shape=(5,), regime="regular")
    (out["synthetic_test"],) = pl.Trainer(**trainer_kwargs).test(synthetic, SyntheticDataModule(**SYNTHETIC),
                                                                  verbose=False)
    return out


if __name__ == "__main__":
    result = evaluate(devices=2)
    if int(os.environ.get("LOCAL_RANK", "0")) == 0:
        torch.save(result, Path(sys.argv[1]) / "metrics.pt")
