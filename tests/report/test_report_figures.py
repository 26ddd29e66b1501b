"""python -m lit_memo.report: every figure type from run folders and a sweep table made here."""

from __future__ import annotations

import csv
import math
import os

import numpy as np
import pytest
import yaml

from lit_memo.report import (Run, accuracy_vs_width, ge_smooth, grid_heatmaps, load_runs, loss_curves, mean_ci,
                             table3_markdown)
from lit_memo.report.figures import tail_mean
from lit_memo.report.__main__ import main

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def make_run(root, name, *, regime, width, radius=None, seed=0, final_loss=1e-3, sigma=0.5, data="SyntheticDataModule",
             extra=None, acc=None, steps=200, activation="tanh", random_labels=None):
    """A run folder as train.py writes it: config.yaml (LightningCLI layout) + metrics.csv (CSVLogger layout)."""
    folder = root / name / "20260101-000000"
    folder.mkdir(parents=True)
    model = {"regime": regime, "width": width, "activation": activation}
    if radius is not None:
        model["radius"] = radius
    data_args = {"n": 40, "d": 4, "seed": 0, **({"random_labels": random_labels} if random_labels is not None else {})}
    cfg = {"seed_everything": seed, "trainer": {"max_steps": steps},
           "model": {"class_path": "lit_memo.modules.ShallowNetModule", "init_args": {**model, **(extra or {})}},
           "data": {"class_path": f"lit_memo.data.{data}", "init_args": data_args}}
    (folder / "config.yaml").write_text(yaml.safe_dump(cfg))
    cols = ["jacobian/sigma_min", "step", "train/loss", "train/acc", "test/acc"]
    with open(folder / "metrics.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols)
        w.writerow([1e-6, 0, "", "", ""])
        for step in range(10, steps + 1, 10):  # geometric decay ending at final_loss
            loss = final_loss ** (step / steps)
            w.writerow(["", step, loss, acc if acc is not None else "", ""])
        w.writerow([sigma, steps, "", "", acc if acc is not None else ""])
    return folder


@pytest.fixture
def grid(tmp_path):
    """Fig. 4 style: ours over two radii, regular and constrained regular, two widths, and a
    second learning rate in one cell (the cell must show the lower loss)."""
    root = tmp_path / "runs"
    for width in (4, 8):
        for r in (1.0, 10.0):
            make_run(root, f"ours_{width}_{r}", regime="ours", width=width, radius=r, final_loss=10.0 ** -(width + r / 10),
                     sigma=0.1 * width)
            make_run(root, f"cr_{width}_{r}", regime="constrained_regular", width=width, radius=r, final_loss=0.3 / width,
                     sigma=1e-4)
        make_run(root, f"reg_{width}", regime="regular", width=width, radius=10.0, final_loss=0.5 / width, sigma=1e-5)
    make_run(root, "ours_4_1_lr2", regime="ours", width=4, radius=1.0, final_loss=1e-9, sigma=7.0, extra={"lr_hidden": 0.5})
    return root


def test_heatmap_cells_hold_the_best_run_per_cell(grid):
    runs = load_runs([grid])
    assert len(runs) == 11
    (fig,) = grid_heatmaps(runs, "train/loss", "loss", "t").values()
    ours, regular = (ax for ax in fig.axes if ax.images)
    assert [t.get_text() for t in ours.get_xticklabels()] == ["1", "10"]
    assert [t.get_text() for t in regular.get_xticklabels()] == ["1", "10", "inf"]  # regular has no ball: r = inf
    got = np.ma.filled(ours.images[0].get_array(), np.nan)
    assert got[0, 0] == pytest.approx(1e-9)  # the lower of the two runs in (width 4, r 1)
    assert got[1, 1] == pytest.approx(10.0 ** -9)
    assert np.ma.filled(regular.images[0].get_array(), np.nan)[1, 2] == pytest.approx(0.5 / 8)
    assert ours.images[0].norm.__class__.__name__ == "LogNorm"
    (sig,) = grid_heatmaps(runs, "jacobian/sigma_min", "sigma", "t").values()
    # sigma_min comes from the cell's best-loss run, not from the cell's largest sigma
    assert np.ma.filled(sig.axes[0].images[0].get_array(), np.nan)[0, 0] == pytest.approx(7.0)


def test_ge_smoothing_matches_a_plain_loop():
    steps = np.arange(1, 101, dtype=float)
    values = np.random.default_rng(0).random(100)
    s, v = ge_smooth(steps, values, every=5, window=3)
    kept, blocks = [], set()  # the first point of each block of 5 steps: 1, 5, 10, ..., 100
    for st, x in zip(steps, values):
        if st // 5 not in blocks:
            blocks.add(st // 5)
            kept.append((st, x))
    assert len(kept) == 21
    assert list(s) == [st for st, _ in kept]
    for i, (st, _) in enumerate(kept):  # the mean of the kept points of the last 3 x 5 = 15 steps
        window = [x for t, x in kept if st - 15 < t <= st]
        assert v[i] == pytest.approx(sum(window) / len(window))


def test_mean_ci_is_the_student_t_interval():
    mean, half = mean_ci([0.0, 1.0], level=0.9)
    assert mean == 0.5 and half == pytest.approx(6.313752 * (math.sqrt(0.5) / math.sqrt(2)), rel=1e-6)
    assert mean_ci([0.3]) == (0.3, 0.0)


def test_accuracy_vs_width_error_bars_over_seeds(tmp_path):
    for seed, accs in enumerate([(0.5, 0.7), (0.6, 0.9)]):
        for width, acc in zip((64, 512), accs):
            make_run(tmp_path, f"r{seed}_{width}", regime="ours", width=width, radius=10.0, seed=seed, acc=acc,
                     data="CIFAR10DataModule")
    (fig,) = accuracy_vs_width(load_runs([tmp_path])).values()
    (line,) = fig.axes[0].get_lines()[:1]
    assert list(line.get_xdata()) == [64, 512]
    assert list(line.get_ydata()) == pytest.approx([0.55, 0.8])
    assert fig.axes[0].get_xlabel().startswith("width")


def test_table3_rows_per_activation_and_width(tmp_path):
    for act in ("relu", "tanh"):
        make_run(tmp_path, f"rl_{act}", regime="ours", width=1024, radius=100.0, acc=0.99 if act == "relu" else 0.98,
                 activation=act, random_labels=True)
    table = table3_markdown(load_runs([tmp_path]))
    lines = table.strip().splitlines()
    assert lines[0].startswith("| activation | width | train acc (last 10% of steps) | test acc")
    assert lines[2].startswith("| relu | 1024 | 0.9900 | 0.9900 | 1 |")
    assert lines[3].startswith("| tanh | 1024 | 0.9800 |")


def test_command_draws_every_figure_from_folders_and_a_sweep_table(grid, tmp_path, capsys):
    # a table in lit_memo.sweep's layout: varied columns, final/<metric>, run_dir (curves come from it)
    folders = sorted(p.parent for p in grid.rglob("metrics.csv"))
    table = tmp_path / "results.csv"
    with open(table, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["cell", "regime", "width", "radius", "seed_everything", "status", "final/train/loss", "run_dir"])
        for i, folder in enumerate(folders):
            cfg = yaml.safe_load((folder / "config.yaml").read_text())["model"]["init_args"]
            w.writerow([f"c{i}", cfg["regime"], cfg["width"], cfg.get("radius", "inf"), 0, "done", 0.123, folder])
    rl = tmp_path / "rl"
    for width in (8, 16):
        make_run(rl, f"w{width}", regime="ours", width=width, radius=10.0, acc=0.9, random_labels=True,
                 data="CIFAR10DataModule")
    out = tmp_path / "out"
    assert main([str(table), str(rl), "--out", str(out)]) == 0
    names = {p.name for p in out.iterdir()}
    setting = "SyntheticDataModule_n40_d4"  # from the run folders' configs: the table has no data, n, d columns
    assert {f"loss_heatmap_{setting}.png", f"sigma_min_heatmap_{setting}.png", f"loss_curves_{setting}.png",
            "accuracy_vs_width_CIFAR10DataModule.png", "table3.md", "runs.csv"} <= names, names
    for png in out.glob("*.png"):
        assert png.read_bytes()[:8] == PNG_MAGIC and png.stat().st_size > 5000
    # the table's final loss wins over the folder's; sigma_min, absent from the table, comes from the folder
    runs = load_runs([table])
    assert all(r.final["train/loss"] == 0.123 and "jacobian/sigma_min" in r.final for r in runs)
    # runs.csv reads back as a sweep table with the same runs
    again = load_runs([out / "runs.csv"])
    assert len(again) == len(folders) + 2
    assert sum(len(fig.axes) > 0 for fig in loss_curves(again).values()) >= 1


def test_empty_folder_fails_with_one_clear_line(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SystemExit) as err:
        main([str(empty), "--out", str(tmp_path / "out")])
    message = str(err.value)
    assert "holds no runs" in message and str(empty) in message and "\n" not in message
    with pytest.raises(SystemExit, match="no such run folder"):
        main([str(tmp_path / "missing"), "--out", str(tmp_path / "out")])


def test_train_accuracy_is_averaged_over_the_last_tenth_of_the_steps():
    steps = np.arange(0.0, 101.0, 10.0)  # rows at 0, 10, ..., 100: the last 10% is steps 90 and 100
    acc = np.linspace(0.0, 1.0, len(steps))
    run = Run("x", {}, {"train/acc": acc[-1]}, {"train/acc": (steps, acc)})
    assert tail_mean(run, "train/acc") == pytest.approx((acc[-1] + acc[-2]) / 2)
    assert tail_mean(Run("row", {}, {"train/acc": 0.7}), "train/acc") == 0.7  # a table row: its value


def test_sparse_logging_keeps_every_point():
    steps = np.arange(99.0, 1000.0, 100.0)  # logged every 100 steps, none a multiple of 5
    values = np.random.default_rng(1).random(len(steps))
    s, v = ge_smooth(steps, values)
    assert list(s) == list(steps) and list(v) == pytest.approx(list(values))  # 50-step window: each alone


def test_table_run_dirs_relative_to_the_table_or_to_where_the_sweep_ran(grid, tmp_path, monkeypatch):
    """The runner writes run_dir as it was given (e.g. runs/sweeps/NAME/cells/...): relative to the
    working directory of the sweep, not to the table; both must find the folder (its n, d, sigma_min)."""
    folder = sorted(p.parent for p in grid.rglob("metrics.csv"))[0]
    sweep_dir = tmp_path / "runs" / "sweeps" / "s"
    sweep_dir.mkdir(parents=True)
    for name, run_dir in (("cwd", folder.relative_to(tmp_path)), ("table", os.path.relpath(folder, sweep_dir))):
        table = sweep_dir / f"{name}.csv"
        table.write_text(f"cell,width,status,final/train/loss,run_dir\nc0,8,done,0.5,{run_dir}\n")
        monkeypatch.chdir(tmp_path)
        (run,) = load_runs([table.relative_to(tmp_path)])
        assert run.get("n") == 40 and "jacobian/sigma_min" in run.final, name


def test_loss_curves_draw_the_best_learning_rate_per_cell(grid):
    """ours at width 4, r = 1 ran at two learning rates: one curve for it (the lower final loss), as the heatmaps."""
    runs = load_runs([grid])
    (fig,) = loss_curves(runs).values()
    ours = next(ax for ax in fig.axes if ax.get_title() == "regime: ours")
    labels = [line.get_label() for line in ours.get_lines()]
    assert len(labels) == 4, labels  # (width 4, 8) x (r 1, 10)
    best = min((r for r in runs if r.get("regime") == "ours" and r.get("width") == 4 and r.get("radius") == 1.0),
               key=lambda r: r.final["train/loss"])
    (line,) = [ln for ln in ours.get_lines() if ln.get_label().endswith("radius=1, width=4")]
    _, smoothed = ge_smooth(*best.curves["train/loss"])
    assert best.get("lr_hidden") == 0.5 and line.get_ydata()[-1] == pytest.approx(smoothed[-1])
