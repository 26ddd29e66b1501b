"""A sweep file: a base config plus the values to vary, expanded into cells (one train.py run each).

```yaml
name: fig4_cpu                      # optional; default: the file's stem
config: [synthetic_narrow.yaml]     # train.py --config (one or several, as on the command line)
flags:                              # fixed train.py flags, dotted as on the command line
  trainer.max_steps: 2000
grid:                               # key -> values, every combination; a list of such blocks is
  model.init_args.width: [50, 100]  # their union (e.g. regular x no radius, ours x radii)
zip:                                # equal-length lists varied together (one axis), crossed
  model.init_args.lr_hidden: [0.1, 0.01]   # with the grid; a list of such dicts is several axes
  model.init_args.lr_outer: [0.1, 0.01]
```

Keys are train.py's own (``model.init_args.radius``, ``seed_everything``, ``data.init_args.n``);
building the config of a cell is the only check that a key exists, so a typo fails the way the
command line fails.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

SPEC_KEYS = ("name", "config", "flags", "grid", "zip", "output_dir", "batching", "wandb_project")


def flag_value(value: Any) -> str:
    """A value as train.py's parser reads it back (YAML: ``.inf``, ``[]``, ``true``)."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10**9).strip()
    return text[: -len("...")].strip() if text.endswith("...") else text


def as_flags(values: dict[str, Any]) -> list[str]:
    return [f"--{key}={flag_value(value)}" for key, value in values.items()]


def cell_id(values: dict[str, Any]) -> str:
    """Stable name of a cell: a hash of its varied values (growing the grid keeps old ids)."""
    text = json.dumps({k: _jsonable(v) for k, v in sorted(values.items())}, sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def _jsonable(value: Any) -> Any:
    return repr(value) if isinstance(value, float) and not math.isfinite(value) else value


def column_names(keys: list[str]) -> dict[str, str]:
    """Table column per varied key: its last component (``width``), the full key where two clash."""
    last = [k.rsplit(".", 1)[-1] for k in keys]
    return {k: (short if last.count(short) == 1 else k) for k, short in zip(keys, last)}


@dataclass
class SweepSpec:
    path: Path
    name: str
    config: list[str]
    flags: dict[str, Any] = field(default_factory=dict)
    blocks: list[dict[str, list]] = field(default_factory=lambda: [{}])
    zips: list[dict[str, list]] = field(default_factory=list)
    output_dir: Path = Path("runs/sweeps")
    batching: str = "auto"  # auto | off
    wandb_project: str = "lit_memo"

    @property
    def varied_keys(self) -> list[str]:
        keys: list[str] = []
        for part in self.blocks + self.zips:
            keys += [k for k in part if k not in keys]
        return keys

    @property
    def columns(self) -> dict[str, str]:
        return column_names(self.varied_keys)

    @property
    def root(self) -> Path:
        """Where this sweep's table and cell folders live."""
        return self.output_dir / self.name

    def cells(self) -> list[dict[str, Any]]:
        """Every cell's varied values, in a fixed order (blocks in order, then row-major)."""
        zipped = [[dict(zip(z, vals)) for vals in zip(*z.values())] for z in self.zips]
        out, seen = [], set()
        for block in self.blocks:
            for combo in itertools.product(*block.values()):
                base = dict(zip(block, combo))
                for parts in itertools.product(*zipped):
                    cell = dict(base)
                    for part in parts:
                        cell.update(part)
                    if cell_id(cell) not in seen:  # overlapping blocks name a cell once
                        seen.add(cell_id(cell))
                        out.append(cell)
        return out

    def train_args(self, cell: dict[str, Any]) -> list[str]:
        """The train.py arguments of one cell (output folder and resume added by the runner)."""
        args: list[str] = []
        for config in self.config:
            args += ["--config", _resolve(config, self.path)]
        return args + as_flags(self.flags) + as_flags(cell)


def _resolve(config: str, sweep_path: Path) -> str:
    """A config named relative to the sweep file if it is there, else as train.py resolves it."""
    local = sweep_path.parent / config
    return str(local) if local.is_file() else config


def load_sweep(path: str | Path, output_dir: str | Path | None = None) -> SweepSpec:
    """Read and check a sweep file; every error names the field and the fix."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"sweep file {path}: no such file")
    raw = yaml.safe_load(path.read_text()) or {}
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: a sweep file is a mapping with keys {SPEC_KEYS}")
    unknown = sorted(set(raw) - set(SPEC_KEYS))
    if unknown:
        raise ValueError(f"{path}: unknown keys {unknown}; a sweep file has {SPEC_KEYS}")
    config = raw.get("config")
    if isinstance(config, str):
        config = [config]
    if not config or not all(isinstance(c, str) for c in config):
        raise ValueError(f"{path}: 'config' must name the base config(s), e.g. config: synthetic_narrow.yaml")
    flags = raw.get("flags") or {}
    if not isinstance(flags, dict):
        raise ValueError(f"{path}: 'flags' must map train.py keys to fixed values")
    grid = raw.get("grid") or {}
    blocks = grid if isinstance(grid, list) else [grid]
    zips = raw.get("zip") or []
    zips = zips if isinstance(zips, list) else [zips]
    for where, part in [("grid", b) for b in blocks] + [("zip", z) for z in zips]:
        if not isinstance(part, dict):
            raise ValueError(f"{path}: each '{where}' entry must map keys to lists of values")
        for key, values in part.items():
            if not isinstance(values, list) or not values:
                raise ValueError(f"{path}: {where}.{key} must be a non-empty list of values, got {values!r}")
            if key in flags:
                raise ValueError(f"{path}: {key} is both fixed in 'flags' and varied in '{where}'; keep one")
    for z in zips:
        lengths = {k: len(v) for k, v in z.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"{path}: zipped lists must have equal lengths, got {lengths}")
    batching = raw.get("batching", "auto")
    if batching not in ("auto", "off"):
        raise ValueError(f"{path}: batching must be 'auto' or 'off', got {batching!r}")
    out = Path(output_dir) if output_dir is not None else Path(raw.get("output_dir", "runs/sweeps"))
    return SweepSpec(path=path, name=str(raw.get("name") or path.stem), config=list(config), flags=dict(flags),
                     blocks=[dict(b) for b in blocks] or [{}], zips=[dict(z) for z in zips], output_dir=out,
                     batching=batching, wandb_project=str(raw.get("wandb_project", "lit_memo")))
