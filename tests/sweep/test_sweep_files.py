"""configs/sweeps/: every sweep builds train.py configs, and the W&B files match their local sweeps."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import train
from conftest import ROOT
from lit_memo.sweep import load_sweep, wandb_sweeps
from lit_memo.sweep.spec import as_flags

SWEEPS = ROOT / "configs" / "sweeps"
LOCAL = sorted(p for p in SWEEPS.glob("*.yaml") if not p.name.endswith(".wandb.yaml"))
WANDB = sorted(SWEEPS.glob("*.wandb.yaml"))


def heavy_marked(paths):
    """Building a ResNet-18 or a 1024-wide MLP takes seconds on a shared CPU: those are slow tests."""
    return [pytest.param(p, id=p.name, marks=[pytest.mark.slow] if not p.name.startswith("fig4") else []) for p in paths]


def base_configs_exist(spec) -> None:
    for config in spec.config:
        if not (ROOT / "configs" / config).is_file() and not Path(config).is_file():
            pytest.skip(f"{spec.path.name}: base config {config} does not exist yet (issue 9's deep configs)")


def build(args: list[str], out: Path):
    return train.build_cli([*args, f"--output_dir={out}", "--wandb_mode=disabled", "--trainer.enable_progress_bar=false"])


@pytest.mark.parametrize("path", heavy_marked(LOCAL))
def test_local_sweep_cells_build(path, tmp_path):
    """The last cell of every block builds (the W&B test builds the first): varied keys are real keys."""
    spec = load_sweep(path)
    base_configs_exist(spec)
    cells = spec.cells()
    assert len(cells) == len({tuple(sorted(map(str, c.items()))) for c in cells})  # no duplicates
    for block in spec.blocks:
        last = {k: v[-1] for k, v in block.items()}
        for cell in (last,):
            cli = build(spec.train_args(cell), tmp_path)
            hp = cli.model.hparams
            for key, value in cell.items():
                if key.startswith("model.init_args."):
                    assert hp[key.rsplit(".", 1)[-1]] == (list(value) if isinstance(value, list) else value), key
                elif key == "seed_everything":
                    assert cli.config.seed_everything == value


@pytest.mark.parametrize("path", LOCAL, ids=lambda p: p.name)
def test_wandb_files_are_generated_from_the_local_sweep(path):
    spec = load_sweep(path)
    expected = wandb_sweeps(spec)
    for name, sweep in expected.items():
        file = SWEEPS / name
        assert file.is_file(), f"missing {name}: run python -m lit_memo.sweep {path.relative_to(ROOT)} --write_wandb"
        assert yaml.safe_load(file.read_text()) == sweep, f"{name} is out of step with {path.name}: regenerate it"
    # W&B's grid covers the same cells as the local one
    wandb_cells = sum(_product(s["parameters"]) for s in expected.values())
    assert wandb_cells == len(spec.cells())


def _product(parameters: dict) -> int:
    total = 1
    for p in parameters.values():
        total *= len(p["values"])
    return total


def test_every_wandb_file_has_a_local_sweep():
    generated = {name for path in LOCAL for name in wandb_sweeps(load_sweep(path))}
    assert {p.name for p in WANDB} == generated


@pytest.mark.parametrize("path", heavy_marked(WANDB))
def test_wandb_agent_command_builds_a_config(path, tmp_path):
    """The command an agent runs for the first grid point, as it formats it (``--key=value``)."""
    sweep = yaml.safe_load(path.read_text())
    assert sweep["method"] == "grid" and sweep["program"] == "train.py"
    first = {k: p["values"][0] for k, p in sweep["parameters"].items()}
    args = []
    for part in sweep["command"]:
        if part == "${args}":
            args += [f"--{k}={v}" for k, v in first.items()]  # the agent's own formatting: str(value)
        elif part not in ("${env}", "python", "${program}"):
            args.append(part)
    for config in args[1::2][: args.count("--config")]:
        if not (ROOT / "configs" / config).is_file():
            pytest.skip(f"base config {config} does not exist yet")
    cli = build(args, tmp_path)
    for key, value in first.items():
        if key.startswith("model.init_args."):
            got = cli.model.hparams[key.rsplit(".", 1)[-1]]
            assert str(got) == str(value) or got == yaml.safe_load(str(value)), key


def test_flags_round_trip_through_the_parser(tmp_path):
    """inf, lists and nested callbacks reach train.py's parser intact."""
    args = ["--config", "synthetic_narrow.yaml", *as_flags({"model.init_args.radius": float("inf"), "trainer.callbacks": [],
                                                             "data.init_args.n": 30})]
    cli = build(args, tmp_path)
    assert cli.model.radius == float("inf") and cli.datamodule.hparams.n == 30
