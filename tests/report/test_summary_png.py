"""summary.png at the end of every train.py run; the same figure goes to W&B when W&B is on."""

from __future__ import annotations

from types import SimpleNamespace
from unittest import mock

import numpy as np
import pytest
from pytorch_lightning.loggers import CSVLogger, WandbLogger

import train
from lit_memo.report import log_summary, read_metrics, summary_figure

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TINY = ["--config", "synthetic_narrow.yaml", "--wandb_mode=disabled", "--trainer.enable_progress_bar=false",
        "--trainer.max_steps=20", "--model.init_args.steps_per_batch=5", "--data.init_args.n=20",
        "--data.init_args.d=4", "--model.init_args.width=10"]


def panel_titles(fig) -> list[str]:
    return [ax.get_title() for ax in fig.axes if ax.get_visible()]


def test_train_py_writes_summary_png_with_the_diagnostics_it_logged(tmp_path):
    cli = train.main([*TINY, f"--output_dir={tmp_path}"])
    png = cli.run_dir / "summary.png"
    assert png.read_bytes()[:8] == PNG_MAGIC
    titles = panel_titles(summary_figure(read_metrics(cli.run_dir / "metrics.csv")))
    # synthetic_narrow.yaml logs all four diagnostics: each gets its panel
    assert {"loss", "Jacobian singular values", "Hessian extreme eigenvalues",
            "NTK drift ||K_t - K_0|| / ||K_0||"} <= set(titles)
    assert any(t.startswith("constraint ratio") for t in titles)


def test_a_run_without_diagnostics_still_gets_a_loss_plot(tmp_path):
    cli = train.main([*TINY, f"--output_dir={tmp_path}", "--trainer.callbacks=[]"])
    assert (cli.run_dir / "summary.png").read_bytes()[:8] == PNG_MAGIC
    fig = summary_figure(read_metrics(cli.run_dir / "metrics.csv"))
    assert panel_titles(fig) == ["loss"]
    (line,) = fig.axes[0].get_lines()
    assert line.get_label() == "train/loss" and len(line.get_xdata()) == 4  # one row per 5-step batch


def test_empty_metrics_still_draw_a_labelled_loss_panel():
    fig = summary_figure({"jacobian/sigma_min": (np.array([0.0, 10.0]), np.array([1e-3, 1e-2]))})
    assert panel_titles(fig) == ["loss", "Jacobian singular values"]
    assert "no loss logged" in [t.get_text() for t in fig.axes[0].texts]


def test_summary_goes_to_every_wandb_logger(tmp_path):
    (tmp_path / "metrics.csv").write_text("step,train/loss\n1,0.5\n2,0.25\n")
    wandb_logger = mock.create_autospec(WandbLogger, instance=True)
    csv_logger = mock.create_autospec(CSVLogger, instance=True)
    trainer = SimpleNamespace(is_global_zero=True, loggers=[csv_logger, wandb_logger])
    path = log_summary(trainer, tmp_path)
    assert path == tmp_path / "summary.png" and path.is_file()
    csv_logger.save.assert_called_once()  # flushed before being read back
    wandb_logger.log_image.assert_called_once_with(key="summary", images=[str(path)])
    other_rank = SimpleNamespace(is_global_zero=False, loggers=[wandb_logger])
    assert log_summary(other_rank, tmp_path) is None
    assert wandb_logger.log_image.call_count == 1


@pytest.mark.slow
def test_an_offline_wandb_run_holds_the_summary_image(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)  # conftest disables W&B; this test wants it offline
    cli = train.main([*TINY, f"--output_dir={tmp_path}", "--trainer.callbacks=[]", "--wandb_mode=offline"])
    images = list((cli.run_dir / "wandb").glob("offline-run-*/files/media/images/summary_*.png"))
    assert len(images) == 1 and images[0].read_bytes()[:8] == PNG_MAGIC
