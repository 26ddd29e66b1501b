"""train.py end to end: config resolution, run folders, CSV, errors before training, resume, DDP."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import train
from conftest import ROOT, assert_inside_and_fixed_point

CONFIGS = sorted(p.name for p in (ROOT / "configs").glob("*.yaml"))
QUIET = ["--trainer.enable_progress_bar=false", "--wandb_mode=disabled"]


def run_dirs(out: Path) -> list[Path]:
    return sorted(p.parent for p in out.glob("*/*/config.yaml"))


def read_csv(path: Path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("name", CONFIGS)
def test_every_config_builds(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a bare config name must resolve from anywhere
    # the config itself, not its dataset (absent here for some; train.py checks it before a run)
    cli = train.build_cli(["--config", name, f"--output_dir={tmp_path}", *QUIET], check_data=False)
    assert cli.model is not None and cli.datamodule is not None and cli.trainer is not None
    assert tuple(cli.model.input_shape) == tuple(cli.datamodule.input_shape)  # linked, not repeated


def test_cli_trains_and_writes_run_folder(tmp_path):
    out = tmp_path / "runs"
    train.main(["--config", "synthetic_narrow.yaml", "--trainer.max_steps=200", f"--output_dir={out}", *QUIET])
    (run,) = run_dirs(out)
    assert run.parent.name == "synthetic_narrow"
    assert (run / "checkpoints" / "last.ckpt").is_file()
    rows = [r for r in read_csv(run / "metrics.csv") if r.get("train/loss")]
    steps = [int(float(r["step"])) for r in rows]
    assert steps == [50, 100, 150, 200]  # x axis = GD steps, one row per batch of 50
    losses = [float(r["train/loss"]) for r in rows]
    assert losses[-1] < losses[0]
    # a second run never reuses the first one's folder
    train.main(["--config", "synthetic_narrow.yaml", "--trainer.max_steps=50", f"--output_dir={out}", *QUIET])
    assert len(run_dirs(out)) == 2


def test_print_config_resolves_bare_names(capsys):
    with pytest.raises(SystemExit) as exit_info:
        train.main(["--config", "synthetic_narrow", "--model.init_args.width=64", "--print_config"])
    assert exit_info.value.code in (0, None)
    printed = capsys.readouterr().out
    assert "regime: ours" in printed and "width: 64" in printed


@pytest.mark.parametrize("flag,message", [
    ("--model.init_args.width=51", "layer 'hidden' has width 51, which is odd"),
    ("--model.init_args.radius=-1", "radius must be >= 0"),
    ("--model.init_args.gamma=0.5", "gamma must be >= 1"),
    ("--model.init_args.zeta=-0.1", "zeta must be"),
    ("--model.init_args.regime=fancy", "unknown regime 'fancy'"),
    ("--ckpt_path=/nonexistent.ckpt", "no such checkpoint"),
])
def test_bad_values_fail_before_training(flag, message, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        train.main(["--config", "synthetic_narrow.yaml", flag, f"--output_dir={tmp_path}", *QUIET])
    assert message in str(exit_info.value.code)
    assert run_dirs(tmp_path) == [] and not any(tmp_path.rglob("*.ckpt"))


def test_unknown_config_lists_the_available_ones(tmp_path):
    with pytest.raises(SystemExit, match="no_such.yaml.*available configs: .*synthetic_narrow.yaml"):
        train.main(["--config", "no_such.yaml", f"--output_dir={tmp_path}"])


@pytest.mark.parametrize("flag", ["--model.init_args.bogus=1", "--trainer.max_stepz=3"])
def test_unknown_key_fails(flag, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        train.main(["--config", "synthetic_narrow.yaml", flag, f"--output_dir={tmp_path}", *QUIET])
    assert str(exit_info.value.code).startswith("error: ")
    assert flag.split("=")[0].rsplit(".", 1)[-1] in exit_info.value.code
    assert run_dirs(tmp_path) == []


def test_wandb_goes_offline_without_credentials(monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no_netrc"))
    assert train.wandb_mode("auto") == "offline"
    assert train.wandb_mode("disabled") == "disabled"


@pytest.mark.slow
def test_offline_wandb_run_does_not_block(monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no_netrc"))
    cli = train.main(["--config", "synthetic_narrow.yaml", "--trainer.max_steps=50", f"--output_dir={tmp_path}",
                      "--trainer.enable_progress_bar=false"])
    (run,) = run_dirs(tmp_path)
    assert any((run / "wandb").glob("offline-run-*")), "no offline W&B run folder"
    assert "train/loss" in read_csv(run / "metrics.csv")[0]  # the CSV copy is always there
    cli.trainer.loggers[1].experiment.finish()


@pytest.mark.slow
def test_resume_equals_uninterrupted_run(tmp_path):
    common = ["--config", "synthetic_narrow.yaml", "--trainer.deterministic=true", "--model.init_args.steps_per_batch=5",
              "--model.init_args.radius=1.0", *QUIET]
    init = {k: v.detach().clone() for k, v in train.build_cli(common + [f"--output_dir={tmp_path / 'x'}"]).model.named_parameters()}

    train.main(common + ["--trainer.max_steps=40", f"--output_dir={tmp_path / 'full'}"])
    train.main(common + ["--trainer.max_steps=20", f"--output_dir={tmp_path / 'half'}"])
    (first,) = run_dirs(tmp_path / "half")
    train.main(common + ["--trainer.max_steps=40", f"--output_dir={tmp_path / 'half'}",
                         f"--ckpt_path={first / 'checkpoints' / 'last.ckpt'}"])
    resumed = [d for d in run_dirs(tmp_path / "half") if d != first]
    assert len(resumed) == 1, "resuming must write a new run folder"

    (full,) = run_dirs(tmp_path / "full")
    a = torch.load(full / "checkpoints" / "last.ckpt", weights_only=False)
    b = torch.load(resumed[0] / "checkpoints" / "last.ckpt", weights_only=False)
    assert a["global_step"] == b["global_step"] == 40
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key  # bitwise
    assert torch.equal(b["constraint_anchors"]["hidden"][0], init["net.hidden.weight"])  # never re-captured
    assert b["constraint_anchors"]["hidden"][0].data_ptr() != 0
    assert not torch.equal(b["state_dict"]["net.hidden.weight"], init["net.hidden.weight"])


@pytest.mark.slow
@pytest.mark.parametrize("steps_per_batch", [1, 5])
def test_ddp_two_cpu_processes(tmp_path, steps_per_batch):
    """Anchors identical on both ranks (rank 1 starts from other weights: DDP broadcasts rank 0's),
    weights identical after training, constraints hold, and full-batch DDP equals one process."""
    args = ["--config", "synthetic_narrow.yaml", "--trainer.max_steps=20", "--model.init_args.radius=0.5",
            f"--model.init_args.steps_per_batch={steps_per_batch}", *QUIET]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("LIT_MEMO_RUN_DIR", None)
    for name, extra in (("ddp", ["--trainer.strategy=ddp", "--trainer.devices=2", "--trainer.accelerator=cpu"]),
                        ("single", [])):
        out = tmp_path / name
        out.mkdir()
        subprocess.run([sys.executable, str(ROOT / "tests" / "ddp_worker.py"), str(out), *args, *extra,
                        f"--output_dir={out / 'runs'}"], check=True, cwd=tmp_path, env=env, timeout=300)
    r0, r1 = (torch.load(tmp_path / "ddp" / f"rank{r}.pt", weights_only=False) for r in (0, 1))
    single = torch.load(tmp_path / "single" / "rank0.pt", weights_only=False)
    assert r0["global_step"] == r1["global_step"] == 20
    for k in r0["params"]:
        assert torch.equal(r0["start"][k], r1["start"][k]), k
        assert torch.equal(r0["params"][k], r1["params"][k]), k
        assert torch.allclose(r0["params"][k], single["params"][k], atol=1e-5), k
    assert torch.equal(r0["anchors"]["hidden"][0], r1["anchors"]["hidden"][0])
    assert torch.equal(r0["anchors"]["hidden"][0], r0["start"]["net.hidden.weight"])
    assert r0["stats"]["hidden"][1] > 0  # the ball was active, so the projection was exercised
    # the constraint holds on the trained weights
    module = train.build_cli(args + [f"--output_dir={tmp_path / 'check'}"]).model
    module.load_state_dict({k: v for k, v in r1["params"].items()}, strict=False)
    module._constraint_anchors = r1["anchors"]
    assert_inside_and_fixed_point(module)
    assert len(run_dirs(tmp_path / "ddp" / "runs")) == 1  # both ranks share rank 0's folder
