"""What a run does around fit: inf values, run folder name, summary, progress bar, failures, Ctrl-C, resume safety."""

from __future__ import annotations

import json
import math
import signal
import warnings
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import pytest
import pytorch_lightning as pl

import train
from test_cli_errors import TINY

CALLBACKS = """
trainer:
  callbacks:
    - class_path: lit_memo.callbacks.JacobianRankCallback
      init_args: {every_n_steps: 20, num_probes: 40, params: [net.hidden]}
    - class_path: lit_memo.callbacks.ConstraintBoundaryCallback
      init_args: {every_n_steps: 20}
    - class_path: lit_memo.callbacks.HessianEigenCallback
      init_args: {every_n_steps: 40, batch_size: 40}
"""


class Boom(pl.Callback):
    """Raises at a given GD step: a failure (or a Ctrl-C) that only shows up during fit."""

    def __init__(self, at_step: int = 20, interrupt: bool = False) -> None:
        self.at_step, self.interrupt = at_step, interrupt

    def on_train_batch_end(self, trainer, *args) -> None:
        if trainer.global_step >= self.at_step:
            raise KeyboardInterrupt if self.interrupt else FloatingPointError("loss is nan (simulated)")


def folders(out: Path) -> list[Path]:
    return sorted(p.parent for p in out.glob("*/*/config.yaml"))


@pytest.mark.parametrize("value", ["inf", ".inf", "Inf", "+inf"])
def test_inf_on_the_command_line_and_in_yaml(value, tmp_path):
    cli = train.build_cli([*TINY, f"--model.init_args.radius={value}", f"--model.init_args.gamma={value}",
                           f"--output_dir={tmp_path}"])
    assert cli.model.radius == math.inf and cli.model.gamma == math.inf
    override = tmp_path / "inf.yaml"
    override.write_text(f"model:\n  init_args:\n    radius: {value}\n")
    cli = train.build_cli([*TINY, "--config", str(override), f"--output_dir={tmp_path}"])
    assert cli.model.radius == math.inf


def test_inf_is_not_taken_for_other_words(tmp_path):
    with pytest.raises(SystemExit, match="model.init_args.radius: Expected a float. Got value: infinite"):
        train.main([*TINY, "--model.init_args.radius=infinite", f"--output_dir={tmp_path}"])


def test_summary_block_and_json(tmp_path, capsys):
    extra = tmp_path / "callbacks.yaml"
    extra.write_text(CALLBACKS)
    train.main([*TINY, "--config", str(extra), "--trainer.max_steps=40", "--model.init_args.radius=2",
                f"--output_dir={tmp_path}"])
    (run,) = folders(tmp_path)
    assert run.parent.name == "synthetic_narrow"  # the first config names the experiment, not the override
    summary = json.loads((run / "summary.json").read_text())
    printed = capsys.readouterr().out
    assert f"run folder  {run}" in printed and "40 GD steps" in printed
    rows = [r for r in __import__("csv").DictReader(open(run / "metrics.csv")) if r.get("train/loss")]
    losses = [float(r["train/loss"]) for r in rows]
    assert summary["steps"] == 40 and summary["status"] == "completed"
    assert summary["train/loss"] == pytest.approx(losses[-1])
    assert summary["train/loss_best"] <= min(losses) + 1e-12  # best of every GD step, or of the rows
    certs = summary["certificates"]
    for key in ("jacobian/sigma_min", "jacobian/rank", "constraint/hidden/ratio", "hessian/lambda_min"):
        assert key in certs and f"{key} " in printed, key
    last_sigma = [float(r["jacobian/sigma_min"]) for r in __import__("csv").DictReader(open(run / "metrics.csv"))
                  if r.get("jacobian/sigma_min")][-1]
    assert certs["jacobian/sigma_min"] == pytest.approx(last_sigma)


def test_summary_has_test_metrics_without_step(tmp_path, capsys):
    train.main(["--config", "digits_narrow.yaml", "--trainer.max_steps=10", "--data.init_args.subset_size=100",
                "--trainer.enable_progress_bar=false", "--wandb_mode=disabled", f"--output_dir={tmp_path}"])
    (run,) = folders(tmp_path)
    summary = json.loads((run / "summary.json").read_text())
    assert set(summary["test"]) == {"test/loss", "test/acc"}
    out = capsys.readouterr().out
    assert "test/acc" in out and "step " not in out.replace("GD steps", "")


def test_progress_bar_counts_gd_steps_and_shows_sigma_min(tmp_path, capsys):
    extra = tmp_path / "callbacks.yaml"
    extra.write_text(CALLBACKS)
    args = [a for a in TINY if a != "--trainer.enable_progress_bar=false"]
    train.main([*args, "--config", str(extra), "--trainer.max_steps=40", "--data.init_args.batches_per_epoch=2",
                f"--output_dir={tmp_path}"])
    captured = capsys.readouterr()
    bar = captured.out + captured.err  # Lightning's tqdm writes to stdout
    assert "40/40" in bar and "sigma_min=" in bar  # across 2 epochs of 2 batches of 10 steps
    assert "/4 [" not in bar and "v_num" not in bar


def test_name_and_short_config_flag(tmp_path):
    train.main(["-c", "synthetic_regular", *TINY[2:], "--trainer.max_steps=10", f"--output_dir={tmp_path}",
                "--name=my_exp"])
    train.main(["-c", "synthetic_regular", *TINY[2:], "--trainer.max_steps=10", f"--output_dir={tmp_path}"])
    assert sorted(p.parent.name for p in folders(tmp_path)) == ["my_exp", "synthetic_regular"]
    (run,) = [p for p in folders(tmp_path) if p.parent.name == "synthetic_regular"]
    assert "regime: regular" in (run / "config.yaml").read_text()
    assert (run / "hparams.yaml").is_file()


def test_name_in_a_config_file_names_the_run_and_the_command_line_wins(tmp_path):
    named = tmp_path / "named.yaml"
    named.write_text("name: from_file\n")
    out = f"--output_dir={tmp_path / 'runs'}"
    cli = train.build_cli([*TINY, "--config", str(named), out])
    assert cli.run_dir.parent.name == "from_file" and cli.config.name == "from_file"
    cli = train.build_cli(["--name=from_flag", *TINY, "--config", str(named), out])  # flag before the file
    assert cli.run_dir.parent.name == "from_flag" and cli.config.name == "from_flag"
    # an unnamed run records its experiment, so re-running its config.yaml files it under the same name
    cli = train.build_cli([*TINY, out])
    assert cli.run_dir.parent.name == "synthetic_narrow" and cli.config.name == "synthetic_narrow"
    named.write_text("name: a/b\n")
    with pytest.raises(SystemExit, match="error: name: in the config 'a/b': use letters"):
        train.main([*TINY, "--config", str(named), out])


@pytest.mark.parametrize("order", ["wandb_first", "csv_first"])
def test_config_lands_in_the_run_folder_whatever_the_user_loggers(order, tmp_path, monkeypatch):
    """Lightning writes config.yaml to the first logger's folder: a W&B logger's save_dir (the
    working directory by default) or a user's CSVLogger's own folder."""
    wandb = "  - class_path: pytorch_lightning.loggers.WandbLogger\n    init_args: {project: p}\n"
    csv = f"  - class_path: pytorch_lightning.loggers.CSVLogger\n    init_args: {{save_dir: {tmp_path / 'csv'}}}\n"
    loggers = tmp_path / "loggers.yaml"
    loggers.write_text("trainer:\n  logger:\n" + (wandb + csv if order == "wandb_first" else csv + wandb))
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    cli = train.main([*TINY, "--config", str(loggers), "--trainer.max_steps=10", f"--output_dir={tmp_path / 'runs'}"])
    (run,) = folders(tmp_path / "runs")
    assert run == cli.run_dir and "WandbLogger" in (run / "config.yaml").read_text()
    assert list(cwd.iterdir()) == [] and not list((tmp_path / "csv").rglob("config.yaml"))
    assert (run / "metrics.csv").is_file() and list((tmp_path / "csv").rglob("metrics.csv"))  # the user's too
    (wandb_logger,) = [lg for lg in cli.trainer.loggers if type(lg).__name__ == "WandbLogger"]
    assert wandb_logger.save_dir == str(run)  # left at '.', its files go in the run folder too


def test_failure_during_fit_marks_the_run_folder(tmp_path, monkeypatch):
    closed = []
    monkeypatch.setattr("lit_memo.cli.MemoCLI.close_loggers", lambda self, failed: closed.append(failed))
    cli = train.build_cli([*TINY, "--trainer.max_steps=100", f"--output_dir={tmp_path}"])
    cli.trainer.callbacks.append(Boom(at_step=20))
    with pytest.raises(FloatingPointError):
        train.run(cli)
    (run,) = folders(tmp_path)
    assert "failed at GD step 20: FloatingPointError: loss is nan" in (run / "FAILED").read_text()
    assert not (run / "summary.json").exists() and closed == [True]


def test_wandb_run_of_a_failed_run_is_finished_as_failed(tmp_path):
    from pytorch_lightning.loggers import WandbLogger

    from lit_memo.cli import MemoCLI

    logger = WandbLogger(save_dir=str(tmp_path), mode="disabled")
    logger._experiment = mock.Mock()
    MemoCLI.close_loggers(SimpleNamespace(trainer=SimpleNamespace(loggers=[logger])), failed=True)
    logger._experiment.finish.assert_called_once_with(exit_code=1)


def test_ctrl_c_names_the_checkpoint_and_it_resumes(tmp_path, capsys):
    handler = signal.getsignal(signal.SIGINT)
    try:
        cli = train.build_cli([*TINY, "--trainer.max_steps=100", f"--output_dir={tmp_path}"])
        cli.trainer.callbacks.append(Boom(at_step=30, interrupt=True))
        with pytest.raises(SystemExit):
            train.run(cli)
    finally:
        signal.signal(signal.SIGINT, handler)  # Lightning ignores further Ctrl-C while shutting down
    (run,) = folders(tmp_path)
    ckpt = run / "checkpoints" / "last.ckpt"
    reason = (run / "FAILED").read_text()
    assert f"interrupted (Ctrl-C) at GD step 30; resume with --ckpt_path {ckpt}" in reason
    assert str(ckpt) in capsys.readouterr().err
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train.main([*TINY, "--trainer.max_steps=40", f"--output_dir={tmp_path}", f"--ckpt_path={ckpt}"])
    assert not [w for w in caught if "dirpath has changed" in str(w.message)]
    resumed = json.loads(next(p for p in folders(tmp_path) if p != run).joinpath("summary.json").read_text())
    assert resumed["steps"] == 40


@pytest.fixture(scope="module")
def regular_ckpt(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("regular")
    train.main([*TINY, "--model.init_args.regime=regular", "--trainer.max_steps=20", f"--output_dir={out}"])
    return next(out.rglob("last.ckpt"))


def test_resume_regular_into_constrained_is_refused(tmp_path, regular_ckpt):
    args = [*TINY, "--model.init_args.regime=constrained_regular", "--model.init_args.radius=1",
            f"--ckpt_path={regular_ckpt}", "--trainer.max_steps=30", f"--output_dir={tmp_path}"]
    with pytest.raises(SystemExit) as info:
        train.main(args)
    msg = str(info.value.code)
    assert "regime 'regular' -> 'constrained_regular'" in msg and "radius 10.0 -> 1.0" in msg
    assert "no anchor" in msg and "--allow_resume_changes=true" in msg
    assert folders(tmp_path) == []
    with pytest.warns(UserWarning, match="regime 'regular' -> 'constrained_regular'"):
        train.main(args + ["--allow_resume_changes=true"])
    assert len(folders(tmp_path)) == 1


def test_resume_with_changed_radius_is_refused_and_lr_change_warned(tmp_path):
    first = tmp_path / "first"
    train.main([*TINY, "--model.init_args.radius=2", "--trainer.max_steps=20", f"--output_dir={first}"])
    ckpt = next(first.rglob("last.ckpt"))
    with pytest.raises(SystemExit, match="radius 2.0 -> 3.0"):
        train.main([*TINY, "--model.init_args.radius=3", f"--ckpt_path={ckpt}", f"--output_dir={tmp_path / 'x'}"])
    with pytest.warns(UserWarning, match=r"lr_hidden [\d.e-]+ -> 0.0123"):  # not a constraint: a warning
        train.main([*TINY, "--model.init_args.radius=2", "--model.init_args.lr_hidden=0.0123", f"--ckpt_path={ckpt}",
                    "--trainer.max_steps=30", f"--output_dir={tmp_path / 'y'}"])


def test_run_folder_names_under_launchers(tmp_path, monkeypatch):
    """torchrun's default rendezvous id "none" is not a job id; srun steps of one job get a folder each."""
    from lit_memo.cli import MemoCLI

    for var in ("SLURM_JOB_ID", "SLURM_STEP_ID", "TORCHELASTIC_RUN_ID", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "none")
    first, _ = MemoCLI._make_run_dir(tmp_path / "exp")
    second, _ = MemoCLI._make_run_dir(tmp_path / "exp")
    assert first != second and not first.name.startswith("job")
    monkeypatch.delenv("TORCHELASTIC_RUN_ID")
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    names = set()
    for step in ("0", "1"):
        monkeypatch.setenv("SLURM_STEP_ID", step)
        names.add(MemoCLI._make_run_dir(tmp_path / "slurm")[0].name)
    assert names == {"job42.0", "job42.1"}


def test_cached_help_names_train_py_whoever_called_first(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LIT_MEMO_CACHE", str(tmp_path))
    monkeypatch.setattr("sys.argv", ["-c"])  # what `python -c "import train; train.main(['--help'])"` has
    with pytest.raises(SystemExit):
        train.main(["--help"])
    assert capsys.readouterr().out.startswith("usage: train.py")
