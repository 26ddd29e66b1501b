"""HessianEigenCallback's loss: an init argument (also from YAML), else module.loss, else module.criterion
(issue 7, point 7). Checked against the closed form H = (2/N) X^T X of MSE on a linear model."""

from __future__ import annotations

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
import yaml
from jsonargparse import ArgumentParser
from pytorch_lightning.loggers import CSVLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lit_memo.callbacks import HessianEigenCallback

N, D = 24, 4


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return torch.randn(N, D, generator=gen), torch.randn(N, 1, generator=gen)


class LinearRegressor(pl.LightningModule):
    """Built like a third-party project's module: network passed in, its own ``criterion``, no ``loss``."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net, self.criterion = net, nn.MSELoss()

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        return self.criterion(self(batch[0]), batch[1])

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)  # the Hessian of a linear model is constant anyway

    def train_dataloader(self):
        return DataLoader(TensorDataset(*_data()), batch_size=N)


class ScaledLoss(LinearRegressor):
    def loss(self, out, y):  # 3 x MSE: eigenvalues three times the closed form
        return 3 * nn.functional.mse_loss(out, y)


def _eigenvalues(make_trainer, tmp_path, model, callback) -> tuple[float, float]:
    make_trainer(max_steps=1, callbacks=[callback], log_every_n_steps=1, logger=CSVLogger(str(tmp_path), name="", version="")).fit(model)
    rows = (tmp_path / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    first = dict(zip(header, rows[1].split(",")))
    return float(first["hessian/lambda_min"]), float(first["hessian/lambda_max"])


def _closed_form() -> tuple[float, float]:
    x, _ = _data()
    ev = np.linalg.eigvalsh(2.0 / N * x.double().T.numpy() @ x.double().numpy())
    return float(ev[0]), float(ev[-1])


@pytest.mark.parametrize("module, loss, scale", [
    (LinearRegressor, None, 1.0),  # the module's criterion
    (ScaledLoss, None, 3.0),  # module.loss comes before module.criterion
    (ScaledLoss, nn.MSELoss(), 1.0),  # the argument comes before both
    (ScaledLoss, nn.functional.mse_loss, 1.0),  # a plain function
])
def test_the_loss_is_the_argument_then_module_loss_then_criterion(make_trainer, tmp_path, module, loss, scale):
    torch.manual_seed(0)
    callback = HessianEigenCallback(every_n_steps=1, batch_size=N, num_iter=D, loss=loss)
    lo, hi = _eigenvalues(make_trainer, tmp_path, module(nn.Linear(D, 1, bias=False)), callback)
    expected = _closed_form()
    assert (lo, hi) == pytest.approx((scale * expected[0], scale * expected[1]), rel=1e-5)


def test_no_loss_anywhere_is_refused_before_training_naming_the_three_fixes(make_trainer):
    class NoLoss(LinearRegressor):
        def __init__(self, net):
            super().__init__(net)
            del self.criterion

        def training_step(self, batch, batch_idx):
            raise AssertionError("training started")

    with pytest.raises(TypeError, match=r"HessianEigenCallback\(loss=\.\.\.\).*loss\(outputs, targets\).*criterion"):
        make_trainer(max_steps=1, callbacks=[HessianEigenCallback()]).fit(NoLoss(nn.Linear(D, 1)))


def test_a_non_callable_loss_is_refused():
    with pytest.raises(TypeError, match="callable"):
        HessianEigenCallback(loss="mse")


@pytest.mark.parametrize("loss, expected", [
    ({"class_path": "torch.nn.MSELoss"}, nn.MSELoss),
    ({"class_path": "torch.nn.CrossEntropyLoss", "init_args": {"label_smoothing": 0.1}}, nn.CrossEntropyLoss),
    ("torch.nn.functional.mse_loss", nn.functional.mse_loss),
])
def test_the_loss_comes_from_yaml_as_lightning_cli_reads_it(loss, expected):
    # LightningCLI types trainer.callbacks as a list of Callback subclasses; jsonargparse resolves class_path
    parser = ArgumentParser()
    parser.add_argument("--callbacks", type=list[pl.Callback])
    config = {"callbacks": [{"class_path": "lit_memo.callbacks.HessianEigenCallback", "init_args": {"loss": loss}}]}
    (callback,) = parser.instantiate(parser.parse_string(yaml.safe_dump(config))).callbacks
    if isinstance(expected, type):
        assert isinstance(callback.loss, expected)
    else:
        assert callback.loss is expected
    if isinstance(callback.loss, nn.CrossEntropyLoss):
        assert callback.loss.label_smoothing == 0.1
