"""The papers' figure types, drawn from :class:`~lit_memo.report.runs.Run` lists.

- :func:`grid_heatmaps`: a final value over width x radius, one panel per regime, log colour
  scale (Zhang et al. 2021, Fig. 4 a-b: final training loss; c-d: sigma_min of the Jacobian).
- :func:`loss_curves`: training loss on a log scale with Ge et al.'s smoothing (2019, App. C:
  the loss recorded every 5 iterations, each point the average of the last recorded ones).
- :func:`accuracy_vs_width`: test accuracy vs width, mean and 90% t-interval over seeds
  (Zhang et al. Figs. 5, 7-9; Fig. 9's intervals are 90% over 5 seeds).
- :func:`table3_markdown`: train / test accuracy per activation and width (Zhang et al. Table 3).

Matplotlib's object API (``Figure``, no pyplot): no global state, no display needed.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any, Callable, Iterable, Optional, Sequence

import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from scipy import stats

from .runs import BOOKKEEPING, Run

# Fig. 4 b puts regular training (r = inf) and the ball-constrained regular net in one panel
PANEL_OF_REGIME = {"ours": "ours", "regular": "regular", "constrained_regular": "regular"}
PANEL_TITLES = {"ours": "ours (mirrored init + pairwise outer layer + PGD)",
                "regular": "regular (r = inf) and constrained regular (finite r)"}
# the narrowed layer's width: ResNet-18's layer4, the MLP's last hidden layer (Zhang et al. Fig. 7's
# "width of the 2nd hidden layer"), the one-hidden-layer net's width
WIDTH_KEYS = ("layer4_width", "hidden_widths", "width")
SETTING_KEYS = ("data", "n", "d")  # runs differing in these are drawn in separate figures
GE_EVERY, GE_WINDOW = 5, 10  # Ge et al.: a point every 5 iterations; window: our choice (lost in extraction)


def width_of(run: Run) -> Optional[float]:
    for key in WIDTH_KEYS:
        value = run.get(key)
        if isinstance(value, (tuple, list)) and value:
            value = value[-1]
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return value
    return None


def split_by_setting(runs: Iterable[Run]) -> dict[str, list[Run]]:
    """Runs grouped by data set and (n, d); the key reads ``SyntheticDataModule_n500_d20``."""
    groups: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        parts = [f"{k}{run.get(k)}" if k in ("n", "d") else str(run.get(k))
                 for k in SETTING_KEYS if run.get(k) is not None]
        groups["_".join(parts) or "runs"].append(run)
    return dict(sorted(groups.items()))


def _fmt_r(r: float) -> str:
    return "inf" if math.isinf(r) else f"{r:g}"


def _varying(runs: Sequence[Run], skip: Iterable[str] = ()) -> list[str]:
    keys = sorted({k for r in runs for k in r.params} - set(skip) - set(BOOKKEEPING))
    # None / False / missing all mean "off": an option only some runs spelled out is no difference
    return [k for k in keys if len({repr(r.get(k) if r.get(k) not in (None, False, "") else None) for r in runs}) > 1]


LR_KEYS = ("lr_hidden", "lr_outer", "lr", "optimizer_lr")


# -- Fig. 4: width x radius heatmaps ---------------------------------------------------------
def grid_heatmaps(runs: Sequence[Run], metric: str, label: str, title: str,
                  select: str = "train/loss") -> dict[str, Figure]:
    """One figure per setting; panels per regime (see ``PANEL_OF_REGIME``), rows width, columns r.

    A cell with several runs (learning rates, seeds) shows the run with the lowest final
    ``select`` value, as the paper reports the best of its learning-rate grid.
    """
    figures = {}
    for setting, group in split_by_setting(runs).items():
        drawn = [r for r in group if width_of(r) is not None and r.get("regime") is not None and metric in r.final]
        cells = _best_per(drawn, lambda r: (PANEL_OF_REGIME.get(r.get("regime"), r.get("regime")), width_of(r),
                                            r.get("radius", math.inf)), select)
        if len(cells) < 2:  # one cell is no grid
            continue
        panels = sorted({k[0] for k in cells}, key=lambda p: (p != "ours", p))
        widths = sorted({k[1] for k in cells})
        values = np.array([cells[k].final[metric] for k in cells])
        positive = values[np.isfinite(values) & (values > 0)]
        norm = LogNorm(vmin=positive.min(), vmax=max(positive.max(), positive.min() * 10)) if len(positive) else None
        fig = Figure(figsize=(4.6 * len(panels) + 1.2, 1.0 + 0.55 * len(widths) + 1.5), layout="constrained")
        axes = fig.subplots(1, len(panels), squeeze=False)[0]
        image = None
        for ax, panel in zip(axes, panels):
            radii = sorted({k[2] for k in cells if k[0] == panel})
            grid = np.full((len(widths), len(radii)), np.nan)
            for (p, w, r), run in cells.items():
                if p == panel:
                    grid[widths.index(w), radii.index(r)] = run.final[metric]
            shown = np.ma.masked_where(~np.isfinite(grid) | (grid <= 0), grid)
            image = ax.imshow(shown, norm=norm, cmap="viridis", origin="lower", aspect="auto")
            for i in range(len(widths)):
                for j in range(len(radii)):
                    if not np.isnan(grid[i, j]):
                        ax.text(j, i, f"{grid[i, j]:.1e}", ha="center", va="center", fontsize=8,
                                color="white" if norm is None or grid[i, j] <= 0 or norm(grid[i, j]) < 0.6 else "black")
            ax.set_xticks(range(len(radii)), [_fmt_r(r) for r in radii])
            ax.set_yticks(range(len(widths)), [f"{w:g}" for w in widths])
            ax.set_xlabel("radius r of the ball ||W - W0||_F <= r")
            ax.set_ylabel("width m (hidden units)")
            ax.set_title(PANEL_TITLES.get(panel, str(panel)), fontsize=9)
        if image is not None and norm is not None:
            fig.colorbar(image, ax=list(axes), label=f"{label} (log scale)")
        fig.suptitle(f"{title} — {setting}")
        figures[setting] = fig
    return figures


def _score(run: Run, key: str) -> float:
    value = run.final.get(key, math.inf)
    return math.inf if not math.isfinite(value) else value


# -- Ge et al.: smoothed training-loss curves -------------------------------------------------
def ge_smooth(steps: np.ndarray, values: np.ndarray, every: int = GE_EVERY, window: int = GE_WINDOW):
    """Keep one point per block of ``every`` GD steps (the first logged in it: all of them when the
    run logged more sparsely), then replace each by the mean of the kept points of the last
    ``window * every`` GD steps (Ge et al.'s last ``window`` recorded losses when recorded every
    ``every`` steps; a sparsely logged run is then barely smoothed, never over hundreds of steps)."""
    _, first = np.unique(np.floor(steps / every), return_index=True)
    s, v = steps[first], values[first]
    csum = np.cumsum(np.insert(v, 0, 0.0))
    hi = np.arange(1, len(v) + 1)
    lo = np.searchsorted(s, s - window * every, side="right")  # first kept point inside the window
    return s, (csum[hi] - csum[lo]) / (hi - lo)


def loss_curves(runs: Sequence[Run], metric: str = "train/loss", every: int = GE_EVERY,
                window: int = GE_WINDOW) -> dict[str, Figure]:
    """Per setting, one panel per regime (or one panel), a smoothed log-scale curve per run."""
    figures = {}
    for setting, group in split_by_setting(runs).items():
        group = [r for r in group if metric in r.curves and len(r.curves[metric][0])]
        if not group:
            continue
        by_panel: dict[str, list[Run]] = defaultdict(list)
        for run in group:
            by_panel[str(run.get("regime", ""))].append(run)
        by_panel = {panel: _best_over_lrs(members, metric) for panel, members in by_panel.items()}
        panels = sorted(by_panel)
        tallest = max(len(m) for m in by_panel.values())  # room for the longest legend
        fig = Figure(figsize=(max(6.5, 5.2 * len(panels)), max(4.2, 2.2 + 0.2 * tallest)), layout="constrained")
        axes = fig.subplots(1, len(panels), squeeze=False)[0]
        for ax, panel in zip(axes, panels):
            members = by_panel[panel]
            keys = _varying(members, skip=("regime",))
            for run in sorted(members, key=lambda r: [repr(r.get(k)) for k in keys]):
                s, v = ge_smooth(*run.curves[metric], every=every, window=window)
                finite = np.isfinite(v) & (v > 0)
                label = ", ".join(f"{k}={_fmt_value(run.get(k))}" for k in keys) or None
                ax.plot(s[finite], v[finite], lw=1.2, label=label)
            ax.set_yscale("log")
            ax.set_xlabel("GD step")
            ax.set_ylabel(f"{metric} (mean over {window * every} steps, log scale)")
            ax.set_title(f"regime: {panel}" if panel else "training loss", fontsize=9)
            ax.grid(True, which="major", alpha=0.3)
            if len(members) > 1 and keys:
                ax.legend(fontsize=7, ncol=1 + len(members) // 9)
        fig.suptitle(f"{metric} vs GD step (a point every {every} steps, moving average)\n{setting}", fontsize=10)
        figures[setting] = fig
    return figures


def _best_over_lrs(runs: Sequence[Run], metric: str) -> list[Run]:
    """Of runs that differ in learning rates, the one with the lowest final ``metric`` per setting of
    everything else (the paper's best of its learning-rate grid; a 49-pair sweep would draw 49 curves)."""
    varying = _varying(runs)
    if not set(varying) & set(LR_KEYS):
        return list(runs)
    rest = [k for k in varying if k not in LR_KEYS]
    return list(_best_per(runs, lambda r: repr([r.get(k) for k in rest]), metric).values())


def _best_per(runs: Iterable[Run], key: Callable[[Run], Any], metric: str) -> dict[Any, Run]:
    """The run with the lowest final ``metric`` per ``key`` (the first of equals; NaN/inf lose)."""
    best: dict[Any, Run] = {}
    for run in runs:
        k = key(run)
        if k not in best or _score(run, metric) < _score(best[k], metric):
            best[k] = run
    return best


def _fmt_value(value: Any) -> str:
    return _fmt_r(value) if isinstance(value, float) else str(value)


# -- Zhang et al. Figs. 5, 7-9: accuracy vs width ---------------------------------------------
def mean_ci(values: Sequence[float], level: float = 0.9) -> tuple[float, float]:
    """Mean and half-width of the Student-t confidence interval (0 for a single value)."""
    x = np.asarray(values, dtype=float)
    if len(x) < 2:
        return float(x.mean()), 0.0
    half = stats.t.ppf(0.5 + level / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
    return float(x.mean()), float(half)


def accuracy_vs_width(runs: Sequence[Run], metric: str = "test/acc", level: float = 0.9) -> dict[str, Figure]:
    """Per data set, a line per (regime, r): mean ``metric`` over seeds with its interval."""
    figures = {}
    by_data: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        if metric in run.final and width_of(run) is not None:
            by_data[str(run.get("data", "runs"))].append(run)
    for data, group in sorted(by_data.items()):
        series: dict[tuple, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
        for run in group:
            series[(str(run.get("regime", "")), run.get("radius", math.inf))][width_of(run)].append(run.final[metric])
        fig = Figure(figsize=(6.0, 4.2), layout="constrained")
        ax = fig.subplots()
        most = 1
        for (regime, radius), points in sorted(series.items(), key=lambda kv: (kv[0][0], kv[0][1])):
            widths = sorted(points)
            stats_ = [mean_ci(points[w], level) for w in widths]
            most = max(most, *(len(points[w]) for w in widths))
            label = regime + ("" if regime == "regular" else f", r={_fmt_r(radius)}")
            ax.errorbar(widths, [m for m, _ in stats_], yerr=[h for _, h in stats_], marker="o", capsize=3, label=label)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("width of the narrowed layer (log2 scale)")
        ax.set_ylabel(metric.replace("/", " "))
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        ax.set_title(f"{data}: {metric} vs width (mean, {level:.0%} t-interval over up to {most} seeds)", fontsize=9)
        figures[data] = fig
    return figures


# -- Zhang et al. Table 3 ---------------------------------------------------------------------
TRAIN_ACC_KEYS = ("train_eval/acc", "train/acc")  # a full pass over the training set when logged


def tail_mean(run: Run, key: str, fraction: float = 0.1) -> float:
    """Mean of ``key`` over the rows logged in the last ``fraction`` of the run's GD steps (at
    least the last row): with per-batch accuracies, an accuracy over several batches rather than
    the last batch alone; the final value for a sweep-table row without curves."""
    if key not in run.curves:
        return run.final[key]
    steps, values = run.curves[key]
    mask = steps >= steps.max() - fraction * (steps.max() - steps.min())
    return float(values[mask].mean())


def table3_markdown(runs: Sequence[Run], test_key: str = "test/acc") -> str:
    """Markdown rows (activation, width): final train and test accuracy, mean over seeds."""
    rows: dict[tuple, list[Run]] = defaultdict(list)
    for run in runs:
        if width_of(run) is not None and any(k in run.final for k in TRAIN_ACC_KEYS):
            rows[(str(run.get("activation", "")), width_of(run))].append(run)
    if not rows:
        return ""
    lines = ["| activation | width | train acc (last 10% of steps) | test acc | seeds | epochs |", "|---|---|---|---|---|---|"]
    for (activation, width), members in sorted(rows.items()):
        train = [tail_mean(r, next(k for k in TRAIN_ACC_KEYS if k in r.final)) for r in members]
        test = [r.final[test_key] for r in members if test_key in r.final]
        epochs = sorted({str(r.get("max_epochs", "")) for r in members})
        lines.append(f"| {activation} | {width:g} | {np.mean(train):.4f} | "
                     f"{np.mean(test):.4f} | {len(members)} | {', '.join(epochs)} |" if test else
                     f"| {activation} | {width:g} | {np.mean(train):.4f} | n/a | {len(members)} | {', '.join(epochs)} |")
    return "\n".join(lines) + "\n"
