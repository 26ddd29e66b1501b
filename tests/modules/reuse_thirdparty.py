"""A LightningModule written the way third-party projects write theirs (lightning-hydra-template
style): the network is an ``__init__`` argument saved in the hyperparameters, the loss is its own
``criterion``, Adam with a scheduler, its own ``on_fit_start``. The reuse tests (issue 7) build on it.
"""

from __future__ import annotations

import warnings
from collections import OrderedDict

import pytorch_lightning as pl
import torch
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from lit_memo import MirroredInitMixin, ProjectedOptimizerMixin
from lit_memo.models import PairwiseLinear
from lit_memo.optim import BallConstraint, OuterConstraint

D_IN, CLASSES = 12, 3

# Lightning's advice to leave the network out of the hyperparameters; third-party templates often don't
warnings.filterwarnings("ignore", message=".*is an instance of `nn.Module` and is already saved")


def make_net(width: int = 8) -> nn.Sequential:
    return nn.Sequential(OrderedDict(
        stem=nn.Linear(D_IN, width), bn=nn.BatchNorm1d(width), act=nn.ReLU(),
        hidden=nn.Linear(width, width), act2=nn.Tanh(), head=PairwiseLinear(width, CLASSES)))


class Classifier(MirroredInitMixin, ProjectedOptimizerMixin, pl.LightningModule):
    """Everything but ``__init__``: the two subclasses build the network the two usual ways."""

    def _build(self, net: nn.Module) -> None:
        self.net = net
        self.criterion = nn.CrossEntropyLoss()
        self.train_acc = MulticlassAccuracy(num_classes=CLASSES)
        self.fit_starts = 0
        self.mirror_init_()

    def constraint_groups(self):
        return {"hidden": BallConstraint(self.net.hidden, self.hparams.radius),
                "outer": OuterConstraint(self.net.head, self.hparams.zeta, self.hparams.gamma)}

    def on_fit_start(self) -> None:
        super().on_fit_start()
        self.fit_starts += 1

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        out = self(x)
        loss = self.criterion(out, y)
        self.train_acc(out, y)
        self.log("train/loss", loss)
        return loss

    def configure_optimizers(self):
        optimizer = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        return {"optimizer": optimizer, "lr_scheduler": torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.9)}


class ThirdPartyClassifier(Classifier):
    """The network is an ``__init__`` argument, saved in the hyperparameters (the issue's template)."""

    def __init__(self, net: nn.Module, lr: float = 0.05, radius: float = 0.05, zeta: float = 0.05, gamma: float = 2.0):
        super().__init__()
        self.save_hyperparameters(logger=False)
        self._build(net)


class BuiltInside(Classifier):
    """The network is built inside ``__init__`` from plain hyperparameters."""

    def __init__(self, width: int = 8, lr: float = 0.05, radius: float = 0.05, zeta: float = 0.05, gamma: float = 2.0):
        super().__init__()
        self.save_hyperparameters(logger=False)
        self._build(make_net(width))


def loader(n: int = 48, batch_size: int = 8, seed: int = 0) -> torch.utils.data.DataLoader:
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(n, D_IN, generator=g), torch.randint(0, CLASSES, (n,), generator=g)
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=batch_size)


def projected_steps(module) -> dict[str, int]:
    return {name: steps for name, (steps, _) in module.projection_stats.items()}
