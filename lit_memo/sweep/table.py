"""The results table: one CSV row per run, rewritten atomically after every finished run.

CSV, not SQLite: one row per run is what the design promises, any tool reads it, and rows
differ in columns (a run's diagnostics) which a CSV takes as the union of columns. Queries
(``--summary``) load it into an in-memory SQLite database and are plain SQL.
"""

from __future__ import annotations

import csv
import math
import os
import sqlite3
from pathlib import Path
from typing import Any, Iterable

STATUSES = ("done", "failed", "diverged")
FIRST_COLUMNS = ("cell", "status", "mode", "final/train/loss", "best/train/loss", "steps", "wall_s", "run_dir", "error")


class ResultsTable:
    """Rows keyed by cell id; ``put`` writes the whole file through a temporary file + rename,
    so a killed sweep leaves either the old or the new table, never half a row."""

    def __init__(self, path: Path, varied_columns: Iterable[str] = ()) -> None:
        self.path = Path(path)
        self.varied = list(varied_columns)
        self.rows: dict[str, dict[str, Any]] = {}
        if self.path.is_file():
            with open(self.path, newline="") as f:
                for row in csv.DictReader(f):
                    self.rows[row["cell"]] = {k: (v if k == "cell" else to_number(v)) for k, v in row.items() if v != ""}

    def finished(self, cell: str) -> bool:
        return self.rows.get(cell, {}).get("status") in STATUSES

    def put(self, rows: Iterable[dict[str, Any]]) -> None:
        for row in rows:
            self.rows[row["cell"]] = row
        self.write()

    def columns(self) -> list[str]:
        seen = {c: None for c in ("cell", *self.varied, *FIRST_COLUMNS[1:])}
        for row in self.rows.values():
            seen.update({k: None for k in sorted(row)})
        return list(seen)

    def write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.columns())
            writer.writeheader()
            for row in self.rows.values():
                writer.writerow({k: _text(v) for k, v in row.items()})
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)


def _text(value: Any) -> Any:
    return repr(value) if isinstance(value, float) and not math.isfinite(value) else value


def to_number(text: Any) -> Any:
    """CSV text back to a number where it is one (inf and nan included)."""
    if not isinstance(text, str):
        return text
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def connect(table: ResultsTable) -> sqlite3.Connection:
    """The table as SQLite table ``runs`` (numbers typed; column names as in the CSV)."""
    db = sqlite3.connect(":memory:")
    cols = table.columns()
    db.execute("CREATE TABLE runs (" + ", ".join(f'"{c}"' for c in cols) + ")")
    db.executemany("INSERT INTO runs VALUES (" + ", ".join("?" * len(cols)) + ")",
                   [[_sql(to_number(row.get(c))) for c in cols] for row in table.rows.values()])
    return db


def _sql(value: Any) -> Any:
    # SQLite has no NaN (it would read back as NULL) but keeps +-inf: a NaN loss sorts as +inf
    return math.inf if isinstance(value, float) and math.isnan(value) else value


def best_over_lrs(db: sqlite3.Connection, group: list[str], lrs: list[str], metric: str = "final/train/loss") -> list[dict]:
    """Per value of ``group``: the run with the lowest ``metric`` over the learning rates (done or
    diverged runs; failed ones have no loss). SQLite returns the bare columns of the MIN row."""
    g = ", ".join(f'"{c}"' for c in group)
    cols = ", ".join([g] if group else []) + (", " if group else "") + ", ".join(f'"{c}"' for c in lrs)
    query = (f'SELECT {cols}, MIN("{metric}") AS best, COUNT(*) AS runs FROM runs '
             f'WHERE status IN (\'done\', \'diverged\') {"GROUP BY " + g if group else ""} {"ORDER BY " + g if group else ""}')
    names = [*group, *lrs, metric, "runs"]
    return [dict(zip(names, r)) for r in db.execute(query)]


def narrowest_memorizing(db: sqlite3.Connection, best_rows: list[dict], width: str, per: list[str], eps: float,
                         metric: str = "final/train/loss") -> list[dict]:
    """Per value of ``per`` (e.g. regime, radius): the smallest ``width`` whose best-over-lr loss
    is < eps for every seed (columns of ``best_rows`` not in ``per`` or ``width``, e.g. seed, are
    aggregated by their worst loss)."""
    db.execute("DROP TABLE IF EXISTS best")
    cols = [*per, width]
    db.execute("CREATE TABLE best (" + ", ".join(f'"{c}"' for c in cols) + ', "loss")')
    db.executemany("INSERT INTO best VALUES (" + ", ".join("?" * (len(cols) + 1)) + ")",
                   [[r[c] for c in cols] + [_sql(r[metric])] for r in best_rows])
    p = "".join(f'"{c}", ' for c in per)
    group = f"GROUP BY {p[:-2]}" if per else ""
    query = (f'SELECT {p}MIN(CASE WHEN worst < ? THEN "{width}" END), MAX("{width}") FROM '
             f'(SELECT {p}"{width}", MAX(loss) AS worst FROM best GROUP BY {p}"{width}") {group} '
             f'{"ORDER BY " + p[:-2] if per else ""}')
    return [dict(zip([*per, "narrowest", "widest_tried"], r)) for r in db.execute(query, (eps,))]
