"""train.py's data pre-flight runs in the process that starts the ranks. Under ddp_fork,
ddp_notebook and ddp_spawn that process is none of them: there the tensor pipeline stays on the
CPU (on a GPU, moving it would initialise CUDA before the fork, which Lightning refuses, and give
every rank copies on cuda:0), and each rank's own setup moves the data to its device. Under ddp
the parent is rank 0 and keeps its data on its device.

No GPU here: the device is PyTorch's ``meta`` device standing in for ``cuda:N`` (a real move)."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch

from lit_memo import preflight
from lit_memo.data import DigitsDataModule
from lit_memo.data.image import starts_ranks_by_multiprocessing

DEVICE = torch.device("meta")


def trainer(strategy: str, devices: int = 2) -> pl.Trainer:
    t = pl.Trainer(strategy=strategy, accelerator="cpu", devices=devices, logger=False, enable_progress_bar=False,
                   enable_checkpointing=False, enable_model_summary=False)
    if devices > 1:
        t.strategy.parallel_devices = [DEVICE] * devices  # root_device: the "GPU" of this process's rank
    return t


def devices(dm) -> set[torch.device]:
    return {split.device for split in dm.splits.values()}


@pytest.mark.parametrize("strategy,count,parent_starts_ranks", [
    ("ddp_fork", 2, True), ("ddp_notebook", 2, True), ("ddp_spawn", 2, True), ("ddp", 2, False), ("auto", 1, False)])
def test_which_launches_start_the_ranks_from_this_process(strategy, count, parent_starts_ranks):
    assert starts_ranks_by_multiprocessing(trainer(strategy, count)) is parent_starts_ranks


@pytest.mark.parametrize("strategy", ["ddp_fork", "ddp_spawn"])
def test_pre_flight_before_a_multiprocessing_launch_keeps_the_data_on_the_cpu(strategy, monkeypatch):
    t = trainer(strategy)
    dm = DigitsDataModule(subset_size=64, batch_size=16)
    preflight.check_data(dm, t)  # in the parent, before Lightning starts the ranks
    assert devices(dm) == {torch.device("cpu")}  # was the trainer's device
    assert not dm.train_dataloader().pin_memory
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)  # now in a rank: its process group is up
    dm.setup("fit")  # fit's own setup, on the parent's copy
    assert devices(dm) == {DEVICE}


def test_under_ddp_the_parent_is_rank_0_and_keeps_the_data_on_its_device():
    dm = DigitsDataModule(subset_size=64, batch_size=16)
    preflight.check_data(dm, trainer("ddp"))
    assert devices(dm) == {DEVICE}
