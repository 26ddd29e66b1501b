"""Figures and tables of the papers drawn from lit_memo runs (issue 12): ``python -m lit_memo.report``.

Reads run folders written by ``train.py`` and sweep tables written by ``lit_memo.sweep``;
``summary.png`` of one run is :func:`write_summary_png` (train.py calls :func:`log_summary`).
"""

from .figures import accuracy_vs_width, ge_smooth, grid_heatmaps, loss_curves, mean_ci, table3_markdown
from .runs import NoRunsError, Run, load_run_dir, load_runs, load_table, read_metrics, write_table
from .summary import log_summary, summary_figure, write_summary_png

__all__ = [
    "NoRunsError", "Run", "accuracy_vs_width", "ge_smooth", "grid_heatmaps", "load_run_dir", "load_runs",
    "load_table", "log_summary", "loss_curves", "mean_ci", "read_metrics", "summary_figure", "table3_markdown",
    "write_summary_png", "write_table",
]
