"""lit_memo from a project on the unified ``lightning`` package (issue 7, point 6): the mixins and the
diagnostic callbacks on a ``lightning.pytorch.Trainer``, the README's example as written, and a clear
refusal where a ``pytorch_lightning`` object cannot run there."""

from __future__ import annotations

import csv
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import pytorch_lightning as pl
import torch
import yaml
from jsonargparse import ArgumentParser
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from conftest import ROOT
from lit_memo.callbacks import ConstraintBoundaryCallback, HessianEigenCallback, JacobianRankCallback, NTKDriftCallback
from lit_memo.callbacks.base import has_wandb
from lit_memo.models import PairwiseLinear
from lit_memo.optim import ball_distance

L = pytest.importorskip("lightning")
from lightning.pytorch.loggers import CSVLogger, WandbLogger  # noqa: E402

DIAGNOSTICS = (ConstraintBoundaryCallback, HessianEigenCallback, JacobianRankCallback, NTKDriftCallback)


def _readme_namespace() -> dict:
    text = (ROOT / "README.md").read_text()
    code = re.search(r"### On the unified lightning package.*?```python\n(.*?)```", text, re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    return namespace


def _loader(n: int = 64) -> DataLoader:
    gen = torch.Generator().manual_seed(0)
    return DataLoader(TensorDataset(torch.randn(n, 64, generator=gen), torch.randint(0, 10, (n,), generator=gen)),
                      batch_size=16)


def _rows(folder: Path) -> list[dict[str, str]]:
    with open(folder / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_readme_example_on_a_lightning_trainer(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    ns = _readme_namespace()
    model, trainer = ns["model"], ns["trainer"]
    assert isinstance(trainer, L.Trainer) and isinstance(model, L.LightningModule)
    x = torch.randn(8, 64)
    assert torch.equal(model(x), torch.zeros(8, 10))  # mirrored: exactly zero output
    trainer.loggers = [CSVLogger(str(tmp_path), name="", version="")]
    trainer.fit(model, _loader())
    assert trainer.global_step == 20
    assert model.projection_stats["hidden"][0] == 20  # projected after every step
    assert float(ball_distance(model.constraint_groups()["hidden"].params, model.anchors_for("hidden"))) <= 1.0 + 1e-6
    rows = _rows(tmp_path)
    for key in ("jacobian/sigma_min", "constraint/hidden/distance", "hessian/lambda_min"):
        assert [int(r["step"]) for r in rows if r.get(key)] == [0, 10, 20], key


def test_anchors_and_callback_state_survive_a_resume_on_a_lightning_trainer(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    ns = _readme_namespace()
    model = ns["model"]
    quiet = dict(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
                 default_root_dir=str(tmp_path))
    first = L.Trainer(max_steps=4, callbacks=[NTKDriftCallback(every_n_steps=2, num_probes=8)], **quiet)
    first.fit(model, _loader())
    anchors = [a.clone() for a in model.anchors_for("hidden")]
    (ckpt,) = tmp_path.glob("**/*.ckpt")
    torch.manual_seed(1)
    fresh = ns["LitClassifier"](nn.Sequential(nn.Linear(64, 32), nn.ReLU(), PairwiseLinear(32, 10)))  # other weights
    ntk = NTKDriftCallback(every_n_steps=2, num_probes=8)
    L.Trainer(max_steps=6, callbacks=[ntk], **quiet).fit(fresh, _loader(), ckpt_path=str(ckpt))
    assert all(torch.equal(a, b) for a, b in zip(fresh.anchors_for("hidden"), anchors))  # restored, not re-captured
    assert ntk.kernel_0 is not None and first.callbacks[0].kernel_0 is not None
    assert torch.equal(ntk.kernel_0, first.callbacks[0].kernel_0)  # K_0 from the checkpoint


@pytest.mark.parametrize("callback", DIAGNOSTICS)
def test_the_diagnostic_callbacks_are_callbacks_of_both_packages(callback):
    assert issubclass(callback, pl.Callback) and issubclass(callback, L.pytorch.Callback)


def test_a_lightning_cli_config_accepts_the_callbacks():
    # lightning.pytorch.cli.LightningCLI types trainer.callbacks as list[lightning.pytorch.Callback]
    parser = ArgumentParser()
    parser.add_argument("--callbacks", type=list[L.pytorch.Callback])
    config = {"callbacks": [{"class_path": f"lit_memo.callbacks.{cls.__name__}"} for cls in DIAGNOSTICS]}
    callbacks = parser.instantiate(parser.parse_string(yaml.safe_dump(config))).callbacks
    assert [type(cb) for cb in callbacks] == list(DIAGNOSTICS)


def test_a_lightning_wandb_logger_gets_the_media():
    assert has_wandb(SimpleNamespace(loggers=[WandbLogger(offline=True, save_dir=".")]))


def test_lit_memo_modules_and_datamodules_are_refused_by_a_lightning_trainer(tmp_path):
    from lit_memo.data import SyntheticDataModule
    from lit_memo.modules import ShallowNetModule

    trainer = L.Trainer(max_steps=1, accelerator="cpu", logger=False, enable_progress_bar=False,
                        default_root_dir=str(tmp_path))
    with pytest.raises(TypeError, match="must be a `LightningModule`"):  # Lightning's own check, before any of ours
        trainer.fit(ShallowNetModule(width=4, input_shape=(3,)), datamodule=SyntheticDataModule(n=8, d=3))
    ns = _readme_namespace()
    with pytest.raises(TypeError, match="SyntheticDataModule is a pytorch_lightning.LightningDataModule.*use "
                                        "pytorch_lightning.Trainer"):
        trainer.fit(ns["model"], datamodule=SyntheticDataModule(n=8, d=64))


def test_projection_runs_under_a_lightning_trainer_when_the_user_s_on_fit_start_skips_super(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    ns = _readme_namespace()

    class OwnHooks(ns["LitClassifier"]):
        def on_fit_start(self):  # a third-party hook that does not call super()
            self.started = True

    model = OwnHooks(nn.Sequential(nn.Linear(64, 32), nn.ReLU(), PairwiseLinear(32, 10)), lr=5.0)  # leaves the ball
    L.Trainer(max_steps=8, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
              enable_model_summary=False).fit(model, _loader())
    assert model.started and model.projection_stats["hidden"] == (8, 8)  # projected, and binding, at every step
    assert float(ball_distance(model.constraint_groups()["hidden"].params, model.anchors_for("hidden"))) <= 1.0 + 1e-6
