"""--summary's SQL queries against a brute-force computation over a synthetic results table."""

from __future__ import annotations

import itertools
import math
import random

import yaml

from lit_memo.sweep import load_sweep, summarize
from lit_memo.sweep.runner import open_table
from lit_memo.sweep.spec import cell_id


def test_best_over_lrs_and_narrowest_width_match_brute_force(tmp_path):
    grid = {"model.init_args.width": [4, 8, 16], "model.init_args.regime": ["ours", "regular"], "seed_everything": [0, 1],
            "model.init_args.lr_hidden": [0.1, 0.01], "model.init_args.lr_outer": [0.1, 0.01]}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"config": "synthetic_narrow.yaml", "grid": grid}))
    spec = load_sweep(path, tmp_path)
    rng = random.Random(0)
    rows, loss = [], {}
    for cell in spec.cells():
        status = rng.choice(["done"] * 6 + ["diverged", "failed"])
        value = {"done": 10 ** rng.uniform(-5, 0), "diverged": math.nan, "failed": None}[status]
        loss[cell_id(cell)] = (cell, value)
        row = {spec.columns[k]: v for k, v in cell.items()} | {"cell": cell_id(cell), "status": status}
        if value is not None:
            row["final/train/loss"] = value
        rows.append(row)
    table = open_table(spec)
    table.put(rows)
    summary = summarize(spec, open_table(spec), eps=1e-2)  # through the CSV file
    best = {}
    for cell, value in loss.values():
        if value is None:
            continue
        value = math.inf if math.isnan(value) else value
        group = (cell["model.init_args.width"], cell["model.init_args.regime"], cell["seed_everything"])
        best[group] = min(best.get(group, math.inf), value)
    got = {(r["width"], r["regime"], r["seed_everything"]): r["final/train/loss"] for r in summary["best_over_lrs"]}
    assert got == best
    for r in summary["best_over_lrs"]:  # the reported lrs are those of the best run
        cell = {"model.init_args.width": r["width"], "model.init_args.regime": r["regime"],
                "seed_everything": r["seed_everything"], "model.init_args.lr_hidden": r["lr_hidden"],
                "model.init_args.lr_outer": r["lr_outer"]}
        value = loss[cell_id(cell)][1]
        assert (math.inf if math.isnan(value) else value) == r["final/train/loss"]
    for regime in ("ours", "regular"):
        memorizing = [w for w in grid["model.init_args.width"]
                      if all(best.get((w, regime, s), math.inf) < 1e-2 for s in (0, 1))]
        (row,) = [r for r in summary["narrowest_memorizing"] if r["regime"] == regime]
        assert row["narrowest"] == (min(memorizing) if memorizing else None)
    statuses = {r["status"]: r["runs"] for r in summary["status"]}
    assert sum(statuses.values()) == len(spec.cells()) == 48
    assert list(itertools.islice(spec.cells(), 1))[0]["model.init_args.width"] == 4
