"""The synthetic configs switch the diagnostics on from YAML (trainer.callbacks, class_path)."""

from __future__ import annotations

import csv

import pytest

import train
from lit_memo.callbacks import ConstraintBoundaryCallback, HessianEigenCallback, JacobianRankCallback, NTKDriftCallback

EXPECTED = {
    "synthetic_narrow.yaml": {JacobianRankCallback, ConstraintBoundaryCallback, NTKDriftCallback, HessianEigenCallback},
    "synthetic_constrained_regular.yaml": {JacobianRankCallback, ConstraintBoundaryCallback, NTKDriftCallback,
                                           HessianEigenCallback},
    "synthetic_regular.yaml": {JacobianRankCallback, NTKDriftCallback, HessianEigenCallback},  # no constraint to watch
}


@pytest.mark.parametrize("config", sorted(EXPECTED))
def test_config_instantiates_its_diagnostics(config, tmp_path):
    cli = train.build_cli(["--config", config, f"--output_dir={tmp_path}", "--wandb_mode=disabled"])
    assert EXPECTED[config] <= {type(cb) for cb in cli.trainer.callbacks}
    (jac,) = [cb for cb in cli.trainer.callbacks if isinstance(cb, JacobianRankCallback)]
    assert jac.params == ["net.hidden"] and jac.num_probes == cli.datamodule.hparams.n


def test_short_run_of_a_config_logs_the_diagnostics_to_its_csv(tmp_path):
    train.main(["--config", "synthetic_narrow.yaml", "--trainer.max_steps=100", f"--output_dir={tmp_path}",
                "--wandb_mode=disabled", "--trainer.enable_progress_bar=false"])
    (path,) = tmp_path.glob("**/metrics.csv")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    def steps(key):
        return [int(r["step"]) for r in rows if r.get(key)]

    for key in ("jacobian/sigma_min", "jacobian/rank", "ntk/drift", "hessian/lambda_min", "constraint/hidden/ratio",
                "constraint/outer/spread"):
        assert steps(key) == [0, 100], key  # train start and end: their intervals are longer than the run
    assert steps("constraint/hidden/active") == [100]  # needs steps since the last measurement
