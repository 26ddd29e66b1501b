"""The diagnostic callbacks in single-process fits: keys, schedule, values, no effect on training."""

from __future__ import annotations

import math
from types import SimpleNamespace
from unittest import mock

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from diagnostics_fit import EVERY, KEYS, MAX_STEPS, diagnostic_callbacks, fit, make_module, read_metrics, steps_logged
from pytorch_lightning.loggers import CSVLogger, WandbLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lit_memo.callbacks import ConstraintBoundaryCallback, HessianEigenCallback, JacobianRankCallback, NTKDriftCallback
from lit_memo.callbacks.probes import first_samples
from lit_memo.data import RepeatedBatch, SyntheticDataModule
from lit_memo.diagnostics import jacobian_spectrum

SCHEDULE = [0, EVERY, 2 * EVERY, MAX_STEPS]  # train start, every EVERY steps, train end


def value(rows, key, step):
    (v,) = [float(r[key]) for r in rows if r.get(key, "") != "" and int(r["step"]) == step]
    return v


def test_every_key_once_per_logging_step(tmp_path):
    fit(tmp_path, diagnostic_callbacks())
    rows = read_metrics(tmp_path)
    for group, keys in KEYS.items():
        expected = SCHEDULE[1:] if group == "constraint_active" else SCHEDULE
        for key in keys:
            assert steps_logged(rows, key) == expected, key
    for step in SCHEDULE:
        lo, hi = value(rows, "jacobian/sigma_min", step), value(rows, "jacobian/sigma_max", step)
        assert 0 < lo <= hi and value(rows, "jacobian/condition", step) == pytest.approx(hi / lo)
        assert value(rows, "hessian/lambda_min", step) <= value(rows, "hessian/lambda_max", step)
        assert value(rows, "constraint/hidden/ratio", step) <= 1 + 1e-5
        assert value(rows, "constraint/outer/min_abs", step) >= 1e-3 * (1 - 1e-5)
    assert value(rows, "ntk/drift", 0) == 0.0 < value(rows, "ntk/drift", MAX_STEPS)
    assert value(rows, "constraint/hidden/distance", 0) == 0.0
    assert value(rows, "constraint/hidden/active", MAX_STEPS) == 1.0  # r = 0.05 binds at every step


def test_boundary_callback_reads_the_projection_counters_without_resetting_them(tmp_path):
    model = fit(tmp_path, [ConstraintBoundaryCallback(every_n_steps=2)])
    assert model.projection_stats["hidden"] == (MAX_STEPS, MAX_STEPS)  # r = 0.05 binds at every step
    rows = read_metrics(tmp_path)
    assert [value(rows, "constraint/hidden/active", s) for s in (2, 4, 6, 7)] == [1.0] * 4


def test_a_batch_of_several_steps_triggers_once_a_multiple_is_passed(tmp_path):
    # steps_per_batch 4: batches end at steps 4, 8, 12 and 13 (max_steps); every 5 steps
    fit(tmp_path, [JacobianRankCallback(every_n_steps=5, num_probes=4)], max_steps=13, module_kwargs={"steps_per_batch": 4})
    assert steps_logged(read_metrics(tmp_path), "jacobian/rank") == [0, 8, 12, 13]


def test_callbacks_leave_the_shallow_run_bit_identical(tmp_path):
    fit(tmp_path / "with", diagnostic_callbacks(every=1))
    fit(tmp_path / "without", [])
    with_cb, without = torch.load(tmp_path / "with" / "final.pt"), torch.load(tmp_path / "without" / "final.pt")
    assert all(torch.equal(with_cb[k], without[k]) for k in without)


class NoisyNet(pl.LightningModule):
    """Dropout, BatchNorm and shuffled mini-batches: training draws from the global RNG and
    updates buffers, so a callback that touched either would change the run."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 16), nn.BatchNorm1d(16), nn.Tanh(), nn.Dropout(0.3), nn.Linear(16, 3))

    def forward(self, x):
        return self.net(x)

    def loss(self, out, y):
        return F.cross_entropy(out, y)

    def training_step(self, batch, batch_idx):
        return self.loss(self(batch[0]), batch[1])

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1, momentum=0.9)

    def train_dataloader(self):
        gen = torch.Generator().manual_seed(0)
        data = TensorDataset(torch.randn(64, 4, generator=gen), torch.randint(0, 3, (64,), generator=gen))
        return DataLoader(data, batch_size=8, shuffle=True)


def _fit_noisy(make_trainer, callbacks) -> dict[str, torch.Tensor]:
    pl.seed_everything(0)
    model = NoisyNet()
    make_trainer(max_steps=12, callbacks=callbacks).fit(model)
    assert model.training  # the callbacks' eval mode did not leak
    return model.state_dict()


def test_callbacks_leave_rng_buffers_and_mode_alone(make_trainer):
    callbacks = [JacobianRankCallback(every_n_steps=1, num_probes=8), HessianEigenCallback(every_n_steps=1, batch_size=16),
                 NTKDriftCallback(every_n_steps=1, num_probes=8)]
    with_cb, without = _fit_noisy(make_trainer, callbacks), _fit_noisy(make_trainer, [])
    assert all(torch.equal(with_cb[k], without[k]) for k in without)  # running stats included


def test_ntk_drift_is_zero_when_nothing_trains(tmp_path):
    frozen = {"optimizer": lambda groups: torch.optim.SGD(groups, lr=0.0), "lr_hidden": None, "lr_outer": None,
              "regime": "regular", "radius": math.inf}
    fit(tmp_path, [NTKDriftCallback(every_n_steps=2, num_probes=16)], module_kwargs=frozen)
    rows = read_metrics(tmp_path)
    assert steps_logged(rows, "ntk/drift") == [0, 2, 4, 6, 7]
    assert all(value(rows, "ntk/drift", s) == 0.0 for s in (0, 2, 4, 6, 7))


def test_duplicated_hidden_units_show_as_rank_deficiency(make_trainer, tmp_path):
    """Regular net, all hidden rows equal: J w.r.t. W has rank d = 3 < n = 20 probes."""
    ranks = {}
    for duplicated in (False, True):
        pl.seed_everything(0)
        model = make_module(width=10, input_shape=(3,), regime="regular", radius=math.inf, lr_hidden=None, lr_outer=None,
                            optimizer=lambda groups: torch.optim.SGD(groups, lr=0.0))
        if duplicated:
            with torch.no_grad():
                model.net.hidden.weight.copy_(model.net.hidden.weight[:1].expand_as(model.net.hidden.weight))
        out = tmp_path / str(duplicated)
        trainer = make_trainer(max_steps=1, logger=CSVLogger(str(out), name="", version=""), log_every_n_steps=1,
                               callbacks=[JacobianRankCallback(num_probes=20, params=["net.hidden"])])
        trainer.fit(model, SyntheticDataModule(n=20, d=3, batches_per_epoch=1))
        ranks[duplicated] = value(read_metrics(out), "jacobian/rank", 0)
    assert ranks == {False: 20, True: 3}


@pytest.mark.parametrize("regime, radius, expected", [("ours", 0.5, ["net.hidden.weight", "net.output.weight"]),
                                                      ("constrained_regular", 0.5, ["net.hidden.weight"]),
                                                      ("regular", math.inf, None)])
def test_default_parameters_are_the_constrained_groups(tmp_path, regime, radius, expected):
    model = fit(tmp_path, [JacobianRankCallback(every_n_steps=100, num_probes=16)], max_steps=2,
                module_kwargs={"regime": regime, "radius": radius})
    x = SyntheticDataModule(n=64, d=5).make_tensors()[0][:16]
    sv = jacobian_spectrum(model, x, expected)  # at the final weights, logged at train end
    assert value(read_metrics(tmp_path), "jacobian/sigma_min", 2) == pytest.approx(float(sv[-1]), rel=1e-6)


def test_wandb_gets_the_spectrum_histogram_and_csv_only_scalars(make_trainer, tmp_path):
    import wandb

    csv_logger = CSVLogger(str(tmp_path), name="", version="")
    with mock.patch.object(WandbLogger, "log_metrics") as log_metrics:
        trainer = make_trainer(max_steps=2, log_every_n_steps=1,
                               logger=[csv_logger, WandbLogger(mode="disabled", save_dir=str(tmp_path))],
                               callbacks=[JacobianRankCallback(every_n_steps=1, num_probes=8)])
        try:
            trainer.fit(make_module(), SyntheticDataModule(n=16, d=5, batches_per_epoch=2))
        finally:
            wandb.finish()  # a run left open would be reused by the next WandbLogger of the session
    calls = [(c.args[0] if c.args else c.kwargs["metrics"], c.kwargs["step"]) for c in log_metrics.call_args_list]
    logged = [(metrics, step) for metrics, step in calls if "jacobian/rank" in metrics]
    assert [step for _, step in logged] == [0, 1, 2]
    assert all(isinstance(metrics["jacobian/spectrum"], wandb.Histogram) for metrics, _ in logged)
    assert "jacobian/spectrum" not in read_metrics(tmp_path)[0]


def test_probes_come_from_an_iterable_loader_when_no_dataset_is_reachable():
    x, y = torch.arange(20.0).reshape(10, 2), torch.arange(10)
    loader = [(x[:4], y[:4]), (x[4:8], y[4:8]), (x[8:], y[8:])]
    trainer = SimpleNamespace(datamodule=None, train_dataloader=RepeatedBatch((x[:6], y[:6]), 3))
    px, py = first_samples(trainer, 5, torch.device("cpu"))
    assert torch.equal(px, x[:5]) and torch.equal(py, y[:5])
    trainer.train_dataloader = loader
    px, _ = first_samples(trainer, 6, torch.device("cpu"))
    assert torch.equal(px, x[:6])


def test_hessian_callback_needs_a_loss(make_trainer):
    class NoLoss(NoisyNet):
        loss = None

        def training_step(self, batch, batch_idx):
            return F.cross_entropy(self(batch[0]), batch[1])

    with pytest.raises(TypeError, match="loss"):
        make_trainer(max_steps=1, callbacks=[HessianEigenCallback()]).fit(NoLoss())


@pytest.mark.parametrize("make", [lambda: JacobianRankCallback(every_n_steps=0), lambda: NTKDriftCallback(num_probes=0),
                                  lambda: HessianEigenCallback(num_iter=0), lambda: ConstraintBoundaryCallback(every_n_steps=-1)])
def test_invalid_arguments(make):
    with pytest.raises(ValueError):
        make()


def test_every_diagnostic_runs_in_float64(tmp_path):
    """Under precision 64-true the probes must be float64 like the weights (they were float32 and the
    Jacobian's matmul failed); sigma_min then equals the explicit float64 computation."""
    pl.seed_everything(0)
    jac = JacobianRankCallback(every_n_steps=EVERY, num_probes=16)
    callbacks = [jac, ConstraintBoundaryCallback(every_n_steps=EVERY),
                 HessianEigenCallback(every_n_steps=EVERY, batch_size=32, num_iter=10),
                 NTKDriftCallback(every_n_steps=EVERY, num_probes=8)]
    model = make_module()
    data = SyntheticDataModule(n=64, d=5, batches_per_epoch=4)
    trainer = pl.Trainer(accelerator="cpu", precision="64-true", max_steps=MAX_STEPS, callbacks=callbacks,
                         logger=CSVLogger(str(tmp_path), name="", version=""), log_every_n_steps=1,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, data)
    assert next(model.parameters()).dtype == torch.float64
    probes = first_samples(trainer, 16, torch.device("cpu"))
    assert probes[0].dtype == torch.float64
    rows = read_metrics(tmp_path)
    expected = float(jacobian_spectrum(model, probes[0]).min())  # the default: both constrained groups = all weights
    assert value(rows, "jacobian/sigma_min", MAX_STEPS) == pytest.approx(expected, rel=1e-9)
    for key in ("hessian/lambda_min", "ntk/drift", "constraint/hidden/ratio"):
        assert math.isfinite(value(rows, key, MAX_STEPS)), key
