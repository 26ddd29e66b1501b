"""Run train.py's CLI under DDP and save what each rank trains on (the DDP launcher re-runs this file).

    python tests/data/ddp_labels_worker.py OUT_DIR [train.py flags ...]

Rank 1 puts its global RNG in another state before fit: the random labels must not depend on it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytorch_lightning as pl
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import train  # noqa: E402


class DumpData(pl.Callback):
    def __init__(self, out: str) -> None:
        self.out = Path(out)

    def on_train_start(self, trainer, module):
        dm = trainer.datamodule
        sampler = trainer.train_dataloader.sampler
        torch.save({
            "digest": dm.training_set_fingerprint(),
            "indices": dm.train_indices,
            "targets": dm.train_targets,
            "true": dm.true_targets,
            "shard": list(iter(sampler)),  # positions of the training set this rank sees this epoch
            "sampler": type(sampler).__name__,
        }, self.out / f"rank{trainer.global_rank}.pt")


def main() -> None:
    out, args = sys.argv[1], sys.argv[2:]
    cli = train.build_cli(args)
    if int(os.environ.get("LOCAL_RANK", "0")) > 0:
        torch.manual_seed(12345)
    cli.trainer.callbacks.append(DumpData(out))
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)


if __name__ == "__main__":
    main()
