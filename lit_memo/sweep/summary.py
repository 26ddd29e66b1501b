"""``--summary``: the sweep's questions as queries on its results table (Zhang et al. 2021 Fig. 4).

* best over learning rates: per cell of everything else, the lowest final loss and its lrs;
* narrowest width that memorizes: per regime (and radius, ...), the smallest width whose best
  loss is below eps for every seed.
"""

from __future__ import annotations

import math
from typing import Any

from lit_memo.sweep.spec import SweepSpec
from lit_memo.sweep.table import ResultsTable, best_over_lrs, connect, narrowest_memorizing

METRIC = "final/train/loss"


def _is_lr(key: str) -> bool:
    return key.rsplit(".", 1)[-1].startswith("lr")


def _is_seed(key: str) -> bool:
    return "seed" in key.rsplit(".", 1)[-1]


def summarize(spec: SweepSpec, table: ResultsTable, eps: float = 1e-3) -> dict[str, list[dict[str, Any]]]:
    cols = spec.columns
    lrs = [cols[k] for k in cols if _is_lr(k)]
    group = [cols[k] for k in cols if not _is_lr(k)]
    db = connect(table)
    best = best_over_lrs(db, group, lrs, METRIC)
    out = {"best_over_lrs": best}
    widths = [cols[k] for k in cols if k.rsplit(".", 1)[-1].endswith("width")]
    if widths:
        width = widths[0]
        per = [c for c in group if c != width and not any(_is_seed(k) and cols[k] == c for k in cols)]
        out["narrowest_memorizing"] = narrowest_memorizing(db, best, width, per, eps, METRIC)
    counts = db.execute("SELECT status, COUNT(*) FROM runs GROUP BY status ORDER BY status").fetchall()
    out["status"] = [{"status": s, "runs": n} for s, n in counts]
    return out


def format_rows(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "(no rows)"
    keys = list(rows[0])
    text = [[_fmt(r.get(k)) for k in keys] for r in rows]
    widths = [max(len(k), *(len(t[i]) for t in text)) for i, k in enumerate(keys)]
    lines = ["  ".join(k.ljust(w) for k, w in zip(keys, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(t, widths)) for t in text]
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "inf" if math.isinf(value) else f"{value:.4g}"
    return "-" if value is None else str(value)


def format_summary(summary: dict[str, list[dict[str, Any]]], eps: float) -> str:
    parts = []
    for name, rows in summary.items():
        title = {"best_over_lrs": "best final train/loss over learning rates",
                 "narrowest_memorizing": f"narrowest width with best final train/loss < {eps:g} (every seed)",
                 "status": "runs by status"}[name]
        parts.append(f"== {title}\n{format_rows(rows)}")
    return "\n\n".join(parts)
