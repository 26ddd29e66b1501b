"""The W&B workspace builds offline, and its panels show exactly the keys the package logs.

The logged keys are collected, not typed: three short train.py runs (regression with val/test
splits and classification with a val split, both with every diagnostic callback the package
ships; Ge et al.'s quadratic net under perturbed GD), read back from metrics.csv.
"""

from __future__ import annotations

import csv
import re

import pytest

import train
from lit_memo.dashboard import SECTIONS, STEP_KEY, build_workspace, panels

SECTION_PREFIXES = {"training": ("train/", "val/", "test/", "pgd/"), "certificates": ("jacobian/", "hessian/", "ntk/", "theory/"),
                    "constraints": ("constraint/",)}


def diagnostic_callbacks() -> list[dict]:
    """Every callback of lit_memo.callbacks that measures something (the DiagnosticCallback family
    and the theory certificates), as train.py's --trainer.callbacks entries."""
    import lit_memo.callbacks as cbs
    from lit_memo.callbacks.base import DiagnosticCallback

    out = []
    for name in cbs.__all__:
        cls = getattr(cbs, name)
        if isinstance(cls, type) and (issubclass(cls, DiagnosticCallback) or name == "TheoryCertificateCallback"):
            args = {"kron": True} if name == "TheoryCertificateCallback" else {}
            out.append({"class_path": f"lit_memo.callbacks.{name}", "init_args": args})
    assert len(out) >= 5, out
    return out


def logged_keys(run_root) -> set[str]:
    keys = set()
    for path in run_root.rglob("metrics.csv"):
        with open(path, newline="") as f:
            keys |= set(next(csv.reader(f))) - {"step", "epoch"}
    return keys


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    import json

    callbacks = json.dumps(diagnostic_callbacks())
    common = ["--wandb_mode=disabled", f"--output_dir={root}", "--trainer.enable_progress_bar=false",
              f"--trainer.callbacks={callbacks}", "--trainer.max_steps=20", "--model.init_args.steps_per_batch=5"]
    train.main(["--config", "synthetic_narrow.yaml", *common, "--data.init_args.n=20", "--data.init_args.d=4",
                "--data.init_args.n_val=8", "--data.init_args.n_test=8", "--data.init_args.batches_per_epoch=2",
                "--model.init_args.width=10"])
    train.main(["--config", "digits_narrow.yaml", *common, "--data.init_args.subset_size=60",
                "--data.init_args.val_size=20", "--data.init_args.test_size=20", "--trainer.max_epochs=4"])
    # Ge et al.'s quadratic net under perturbed GD: train/mse and pgd/* (its own callbacks come with it)
    train.main(["--config", "ge_synthetic_quadratic.yaml", "--wandb_mode=disabled", f"--output_dir={root}",
                "--trainer.enable_progress_bar=false", "--trainer.max_steps=20", "--trainer.log_every_n_steps=1",
                "--data.init_args.n=10", "--data.init_args.d=4", "--model.init_args.width=8"])
    return logged_keys(root)


def test_workspace_builds_offline_with_three_sections_on_the_gd_step():
    ws = build_workspace("some-entity", "some-project")
    assert [s.name for s in ws.sections] == ["training", "certificates", "constraints"]
    assert all(p.x == STEP_KEY for s in ws.sections for p in s.panels)
    assert ws.settings.x_axis == STEP_KEY
    ws._to_model()  # the spec W&B would receive serializes without the network
    assert sum(len(s.panels) for s in ws.sections) == sum(len(v) for v in SECTIONS.values())


@pytest.mark.slow
def test_every_panel_shows_a_key_the_package_logs_and_every_key_has_a_panel(keys):
    shown = set()
    for section, title, spec, _ in panels():
        if isinstance(spec, str):
            matched = {k for k in keys if re.search(spec, k)}
            assert matched, f"panel {title!r}: regex {spec!r} matches no logged key ({sorted(keys)})"
        else:
            matched = set(spec)
            assert matched <= keys, f"panel {title!r}: {sorted(matched - keys)} never logged"
        assert all(k.startswith(SECTION_PREFIXES[section]) for k in matched), (section, matched)
        shown |= matched
    prefixes = tuple(p for ps in SECTION_PREFIXES.values() for p in ps)
    missing = {k for k in keys if k.startswith(prefixes) and not k.endswith("/seconds")} - shown
    assert not missing, f"logged but on no panel: {sorted(missing)}"


def test_save_without_credentials_is_one_clear_line(monkeypatch, tmp_path):
    from lit_memo.dashboard import main

    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc, no wandb settings
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    with pytest.raises(SystemExit) as err:
        main(["--entity", "some-entity", "--project", "some-project"])
    message = str(err.value)
    assert message.startswith("error: could not save the workspace to some-entity/some-project") and "\n" not in message
