"""``python -m lit_memo.report RUNS_OR_SWEEP_TABLE... --out DIR``: every figure the runs allow.

Writes into DIR, for each setting (data set, n, d) found:
``loss_heatmap_<setting>.png`` and ``sigma_min_heatmap_<setting>.png`` (Zhang et al. Fig. 4),
``loss_curves_<setting>.png`` (Ge et al. smoothing; ``mse_curves_`` for runs that log the
data term ``train/mse`` apart from a regularizer), ``accuracy_vs_width_<data>.png``
(Zhang et al. Figs. 5, 7-9), ``table3.md`` for random-label runs (Zhang et al. Table 3), and
``runs.csv``: every run's parameters and final metrics, itself a table this command reads.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

from jsonargparse import ArgumentParser

from .figures import GE_EVERY, GE_WINDOW, accuracy_vs_width, grid_heatmaps, loss_curves, table3_markdown
from .runs import NoRunsError, load_runs, write_table


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="python -m lit_memo.report", description=__doc__)
    parser.add_argument("inputs", nargs="+", help="run folders (searched recursively) and sweep tables (.csv)")
    parser.add_argument("--out", type=str, required=True, help="folder for the figures and tables")
    parser.add_argument("--every", type=int, default=GE_EVERY, help="loss curves: a point every N GD steps")
    parser.add_argument("--window", type=int, default=GE_WINDOW, help="loss curves: moving-average window (points)")
    parser.add_argument("--acc_metric", type=str, default="test/acc", help="metric of the accuracy-vs-width figure")
    return parser


def report(inputs: list[str], out: str, every: int = GE_EVERY, window: int = GE_WINDOW,
           acc_metric: str = "test/acc") -> list[Path]:
    """Draw everything the runs in ``inputs`` allow into ``out``; returns the files written."""
    runs = load_runs(inputs)
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [write_table(runs, out_dir / "runs.csv")]
    figures = {
        "loss_heatmap": grid_heatmaps(runs, "train/loss", "final training loss", "Final training loss (Zhang et al. Fig. 4 a-b)"),
        "sigma_min_heatmap": grid_heatmaps(runs, "jacobian/sigma_min", "sigma_min(J) at the end",
                                           "Smallest singular value of the Jacobian at the end (Zhang et al. Fig. 4 c-d)"),
        "loss_curves": loss_curves(runs, every=every, window=window),
        "mse_curves": loss_curves(runs, "train/mse", every=every, window=window),  # Ge et al.: the data term
        "accuracy_vs_width": accuracy_vs_width(runs, acc_metric),
    }
    for kind, by_setting in figures.items():
        for setting, fig in by_setting.items():
            path = out_dir / f"{kind}_{setting}.png"
            fig.savefig(path, dpi=110)
            written.append(path)
    table = table3_markdown([r for r in runs if r.get("random_labels") is True])
    if table:
        (out_dir / "table3.md").write_text(table)
        written.append(out_dir / "table3.md")
    return written


def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        written = report(args.inputs, args.out, args.every, args.window, args.acc_metric)
    except NoRunsError as err:
        raise SystemExit(f"error: {err}") from None
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
