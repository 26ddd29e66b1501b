"""The tensor pipeline keeps CIFAR on the training device: the whole split moves there once, batches
(crops and flips included) are cut there, and the loader neither forks workers nor pins memory.

No GPU here, so the device is PyTorch's ``meta`` device: a real device move (every tensor changes
device, so nothing can silently stay on the CPU), without the data. A GPU run takes the same path
with ``trainer.strategy.root_device`` = ``cuda:N``.
"""

from __future__ import annotations

import types

import torch

from lit_memo.data import CIFAR10DataModule


def test_cifar_splits_and_batches_live_on_the_trainer_device(data_root):
    dm = CIFAR10DataModule(data_dir=str(data_root), subset_size=16, batch_size=8, augment=True, num_workers=4)
    device = torch.device("meta")
    dm.trainer = types.SimpleNamespace(strategy=types.SimpleNamespace(root_device=device))
    dm.setup("fit")
    dm.load_state_dict(dm.state_dict())  # the resume record reads nothing back from the device (pixels: before the move)
    assert {name: split.images.device for name, split in dm.splits.items()} == {"train": device, "test": device}
    assert dm.splits["train"].targets.device == device
    loader = dm.train_dataloader()
    assert loader.num_workers == 0 and not loader.pin_memory  # on-device data: no worker copies, no pinning
    x, y = next(iter(loader))
    assert x.device == device and y.device == device and x.shape == (8, 3, 32, 32)


def test_cifar_stays_on_the_cpu_without_a_trainer_or_on_a_cpu_trainer(data_root):
    dm = CIFAR10DataModule(data_dir=str(data_root), subset_size=16, batch_size=8, augment=True)
    dm.setup("fit")
    x, _ = next(iter(dm.train_dataloader()))
    assert x.device.type == "cpu" and dm.splits["train"].images.dtype == torch.uint8  # crops cut from uint8 pixels
