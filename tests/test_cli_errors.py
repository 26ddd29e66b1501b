"""Issue 8, "Errors: one clear line, before anything is written": one test per case.

Each bad input must end in one ``error: ...`` line naming the field or file and the fix, and
leave no run folder (nor checkpoint, nor W&B run) behind.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch

import train

# a tiny synthetic problem: builds and trains in about a second
TINY = ["--config", "synthetic_narrow.yaml", "--trainer.callbacks=[]", "--data.init_args.n=40",
        "--model.init_args.width=8", "--model.init_args.steps_per_batch=10", "--trainer.enable_progress_bar=false",
        "--wandb_mode=disabled"]


def fails(args: list[str], out: Path) -> str:
    """Run train.main, expect the one-line error, check nothing was written under ``out``."""
    before = set(out.rglob("*")) if out.exists() else set()
    with pytest.raises(SystemExit) as info:
        train.main(args)
    message = str(info.value.code)
    assert message.startswith("error: ") and "\n" not in message, message
    after = set(out.rglob("*")) if out.exists() else set()
    assert after == before, f"written before the error: {sorted(after - before)}"
    return message


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory) -> Path:
    """A real checkpoint of the tiny regular-regime run (no ball anchors)."""
    out = tmp_path_factory.mktemp("ckpt")
    train.main([*TINY, "--model.init_args.regime=regular", "--trainer.max_steps=20", f"--output_dir={out}"])
    (ckpt,) = out.rglob("last.ckpt")
    return ckpt


def test_missing_data_folder(tmp_path):
    msg = fails(["--config", "digits_narrow.yaml", "--data=lit_memo.data.MNISTDataModule",
                 f"--data.init_args.data_dir={tmp_path / 'nowhere'}", f"--output_dir={tmp_path}",
                 "--wandb_mode=disabled"], tmp_path)
    assert "MNIST not found" in msg and str(tmp_path / "nowhere") in msg and "data_dir" in msg


def test_subset_larger_than_dataset(tmp_path):
    msg = fails(["--config", "digits_narrow.yaml", "--data.init_args.subset_size=100000", f"--output_dir={tmp_path}",
                 "--wandb_mode=disabled"], tmp_path)
    assert "data.init_args.subset_size=100000" in msg and "exceeds" in msg


def test_mnist_download_offline(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    msg = fails(["--config", "digits_narrow.yaml", "--data=lit_memo.data.MNISTDataModule",
                 f"--data.init_args.data_dir={tmp_path / 'mnist'}", "--data.init_args.download=true",
                 f"--output_dir={tmp_path / 'runs'}", "--wandb_mode=disabled"], tmp_path / "runs")
    assert "download=true: downloading failed" in msg and "data_dir" in msg
    assert "set download=true" not in msg.lower()


@pytest.mark.parametrize("content", [b"", b"\x00garbage" * 100, "truncate"])
def test_unreadable_checkpoint(content, tmp_path, tiny_ckpt):
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(tiny_ckpt.read_bytes()[:2000] if content == "truncate" else content)
    msg = fails([*TINY, "--model.init_args.regime=regular", f"--ckpt_path={bad}", f"--output_dir={tmp_path / 'runs'}"],
                tmp_path / "runs")
    assert f"--ckpt_path {bad}: not a readable checkpoint" in msg and "last.ckpt" in msg


@pytest.mark.parametrize("flag,what", [("--model.init_args.width=12", "net.hidden.weight is [8, 20]"),
                                       ("--data.init_args.d=10", "net.hidden.weight is [8, 20]")])
def test_checkpoint_of_another_model(flag, what, tmp_path, tiny_ckpt):
    msg = fails([*TINY, "--model.init_args.regime=regular", flag, f"--ckpt_path={tiny_ckpt}",
                 f"--output_dir={tmp_path}"], tmp_path)
    assert what in msg and "another width or dataset" in msg and "config.yaml" in msg


def test_optimizer_invalid_lr(tmp_path):
    msg = fails([*TINY, "--model.init_args.optimizer.init_args.lr=-1", f"--output_dir={tmp_path}"], tmp_path)
    assert "Invalid learning rate: -1" in msg and "optimizer" in msg


def test_max_steps_negative(tmp_path):
    msg = fails([*TINY, "--trainer.max_steps=-5", f"--output_dir={tmp_path}"], tmp_path)
    assert "trainer.max_steps=-5 must be >= 0, or -1" in msg


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_gpu_accelerator_without_gpu(tmp_path):
    msg = fails([*TINY, "--trainer.accelerator=gpu", f"--output_dir={tmp_path}"], tmp_path)
    assert "trainer.accelerator=gpu" in msg and "--trainer.accelerator=cpu" in msg


def test_bad_wandb_mode_env(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "bogus")
    msg = fails([*TINY, f"--output_dir={tmp_path}", "--wandb_mode=auto"], tmp_path)
    assert "WANDB_MODE='bogus'" in msg and "offline" in msg


def test_output_dir_is_a_file(tmp_path):
    target = tmp_path / "a_file"
    target.write_text("x")
    msg = fails([*TINY, f"--output_dir={target}"], tmp_path)
    assert "is a file, not a folder" in msg and "--output_dir" in msg


def test_output_dir_read_only(tmp_path, monkeypatch):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    if os.access(ro, os.W_OK):  # root ignores permission bits: make os.access tell the truth it would
        real = os.access
        monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == ro else real(p, mode))
    msg = fails([*TINY, f"--output_dir={ro / 'runs'}"], tmp_path)
    assert f"{ro} is not writable" in msg


def test_output_dir_cannot_be_created(tmp_path):
    msg = fails([*TINY, "--output_dir=/proc/lit_memo_runs"], tmp_path)
    assert "--output_dir" in msg and "cannot create the run folder" in msg


@pytest.mark.parametrize("flag,expected", [
    ("--model.init_args.radius=abc", "error: model.init_args.radius: Expected a float. Got value: abc"),
    ("--model.init_args.bogus=1", "error: model.init_args.bogus: Option 'bogus' is not accepted"),
    ("--trainer.max_stepz=3", "error: unrecognized arguments: --trainer.max_stepz=3"),
    ("--run_test=maybe", "error: run_test: Expected a bool. Got value: maybe"),
])
def test_parse_error_is_one_line_with_help(flag, expected, tmp_path, capsys):
    msg = fails([*TINY, flag, f"--output_dir={tmp_path}"], tmp_path)
    assert msg.startswith(expected) and "python train.py --help" in msg
    assert "usage:" not in capsys.readouterr().err  # no usage dump


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  init_args:\n    width: [1, 2\n    radius: 3\n")
    msg = fails(["--config", "synthetic_narrow.yaml", "--config", str(bad), f"--output_dir={tmp_path / 'runs'}"],
                tmp_path / "runs")
    assert f"{bad}, line " in msg and "YAML syntax error" in msg


def test_num_outputs_disagreeing_with_data(tmp_path):
    msg = fails([*TINY, "--model.init_args.num_outputs=3", f"--output_dir={tmp_path}"], tmp_path)
    assert "model.init_args.num_outputs=3 disagrees with the data's num_outputs=1" in msg


def test_num_outputs_agreeing_is_fine(tmp_path):
    cli = train.build_cli([*TINY, "--model.init_args.num_outputs=1", f"--output_dir={tmp_path}"])
    assert cli.model.num_outputs == 1


def test_errors_are_quick_without_torch(tmp_path):
    """Mistakes in names, YAML, output folder and W&B mode are caught before torch is imported."""
    import subprocess
    import sys

    code = ("import sys, train\ntry:\n    train.main(sys.argv[1:])\nexcept SystemExit as e:\n"
            "    print(e.code); print('torch' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code, "--config", "no_such_config"], capture_output=True, text=True,
                         cwd=train.CONFIG_DIR.parent, timeout=60).stdout.splitlines()
    assert out[0].startswith("error: --config no_such_config: no such file") and out[1] == "False"


def test_help_is_cached_and_then_needs_no_torch(tmp_path):
    """``train.py --help`` imports Lightning once; later calls print the cached text."""
    import subprocess
    import sys

    code = ("import sys, io, contextlib, train\nout = io.StringIO()\nwith contextlib.redirect_stdout(out):\n"
            "    try:\n        train.main(['--help'])\n    except SystemExit:\n        pass\n"
            "print(repr(out.getvalue()))\nprint('torch' in sys.modules)\n")
    env = {**os.environ, "LIT_MEMO_CACHE": str(tmp_path)}
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                           cwd=train.CONFIG_DIR.parent, timeout=300).stdout.splitlines() for _ in range(2)]
    assert runs[0][1] == "True" and runs[1][1] == "False"  # the second never imported torch
    assert runs[0][0] == runs[1][0] and "--model.help" in runs[1][0]
    assert len(list(tmp_path.glob("help-*.txt"))) == 1


@pytest.mark.parametrize("strategy", ["ddp_fork", "ddp_spawn"])
def test_strategies_that_run_the_ranks_as_child_processes_are_refused(tmp_path, strategy):
    """They ran, but the summary said '0 GD steps' (the metrics stayed in the children) and the
    test phase failed on the first launch's config.yaml and metrics.csv."""
    msg = fails([*TINY, f"--trainer.strategy={strategy}", "--trainer.devices=2", "--trainer.accelerator=cpu",
                 f"--output_dir={tmp_path}"], tmp_path)
    assert "runs the ranks as child processes of train.py" in msg and "--trainer.strategy=ddp" in msg, msg


def test_tpu_launch_is_refused_without_the_ddp_advice():
    """Lightning's XLA launcher subclasses the multiprocessing one: train.py names TPUs, not ddp."""
    from types import SimpleNamespace

    from pytorch_lightning.strategies.launchers.xla import _XLALauncher

    from lit_memo.preflight import ConfigError, check_launch

    trainer = SimpleNamespace(strategy=SimpleNamespace(launcher=object.__new__(_XLALauncher)))
    with pytest.raises(ConfigError, match="TPU") as err:
        check_launch(trainer)
    assert "strategy=ddp" not in str(err.value)
