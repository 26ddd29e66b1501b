"""The same sweep as W&B sweep files (grid method, program train.py) for ``wandb agent``.

W&B's grid is one Cartesian product, so each block of the local sweep's ``grid`` becomes one
W&B sweep file; zipped axes have no W&B grid equivalent and are refused. The base config and
fixed flags go into ``command``; runs are grouped by the sweep on W&B (every agent run carries
the sweep id) and named by train.py as usual.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml

from lit_memo.sweep.spec import SweepSpec, as_flags


def _value(v: Any) -> Any:
    # the agent passes str(value): inf must arrive as YAML's .inf for train.py's parser
    return ".inf" if isinstance(v, float) and math.isinf(v) and v > 0 else v


def wandb_sweeps(spec: SweepSpec) -> dict[str, dict[str, Any]]:
    """File name -> W&B sweep configuration, one per grid block."""
    if spec.zips:
        raise ValueError(f"{spec.path}: W&B grid sweeps cannot zip lists; write the zipped axis as grid blocks")
    command = ["${env}", "python", "${program}"]
    for config in spec.config:
        command += ["--config", config]
    # an agent's runs must reach W&B (they report to the sweep), whatever the local runs use
    flags = {k: v for k, v in spec.flags.items() if k != "wandb_mode"}
    command += as_flags(flags) + ["--wandb_mode=online", "${args}"]
    out = {}
    for i, block in enumerate(spec.blocks):
        name = spec.name if len(spec.blocks) == 1 else f"{spec.name}_{i}"
        out[f"{name}.wandb.yaml"] = {
            "name": name,
            "project": spec.wandb_project,
            "program": "train.py",
            "method": "grid",
            "metric": {"name": "train/loss", "goal": "minimize"},
            "parameters": {k: {"values": [_value(v) for v in vals]} for k, vals in block.items()},
            "command": command,
        }
    return out


HEADER = ("# Generated from {src} by `python -m lit_memo.sweep {src} --write_wandb`; do not edit by hand\n"
          "# (tests/sweep/test_sweep_files.py checks it matches). Launch: `wandb sweep {dst}` then\n"
          "# `wandb agent <sweep id>` on each machine, from the repository root.\n")


def write_wandb_sweeps(spec: SweepSpec, directory: Path | None = None) -> list[Path]:
    directory = Path(directory) if directory is not None else spec.path.parent
    paths = []
    for name, sweep in wandb_sweeps(spec).items():
        path = directory / name
        path.write_text(HEADER.format(src=spec.path.name, dst=path.name) + yaml.safe_dump(sweep, sort_keys=False))
        paths.append(path)
    return paths
