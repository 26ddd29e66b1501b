"""train.py's torch-free front reads each config file once per command (it used to parse it up to
7 times: resolving the name, the run name, two quick checks, three linked options)."""

from __future__ import annotations

import yaml

import train


def test_each_config_file_is_parsed_once_per_command(tmp_path, monkeypatch):
    parsed = []
    real = yaml.safe_load
    monkeypatch.setattr(yaml, "safe_load", lambda text: parsed.append(text) or real(text))
    base, over = tmp_path / "base.yaml", tmp_path / "over.yaml"
    base.write_text("name: first\nmodel:\n  init_args:\n    task: regression\n")
    over.write_text("wandb_mode: disabled\n")
    args, configs = train.resolve_config_args(["--config", str(base), "-c", str(over), f"--output_dir={tmp_path}"])
    assert train.run_name(args, configs) == "first"
    train.quick_checks(args, configs)
    assert train.given_links(args, configs) == {"task": "regression"}
    assert len(parsed) == 2  # one per file (was 14)

    base.write_text("name: second\n")  # edited (another size): read again
    assert train.run_name(args, configs) == "second" and len(parsed) == 3
    train.resolve_config_args(["--config", str(base)])  # a new command reads afresh
    assert len(parsed) == 4
