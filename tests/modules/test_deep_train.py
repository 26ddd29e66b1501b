"""The deep configs through train.py: every one builds; resnet18_narrow.yaml trains end to end on a CPU."""

from __future__ import annotations

import csv
import sys

import pytest

import train
from conftest import ROOT

sys.path.insert(0, str(ROOT / "tests" / "data"))
from fake_formats import write_jpeg_tree, write_png_tree  # noqa: E402
from lit_memo.data.rimagenet import load_table  # noqa: E402

DEEP = ["resnet18_narrow.yaml", "resnet18_regular.yaml", "cifar100_resnet18_narrow.yaml",
        "rimagenet_resnet18_narrow.yaml", "mnist_mlp_narrow.yaml", "mnist_mlp_regular.yaml"]
QUIET = ["--trainer.enable_progress_bar=false", "--wandb_mode=disabled"]


def data_flags(name: str, tmp_path, data_root) -> list[str]:
    """Real MNIST/CIFAR-10 (a small subset); CIFAR-100 and ImageNet are not shipped: tiny fake trees."""
    if name.startswith("cifar100"):
        write_png_tree(tmp_path / "CIFAR100", [f"class{k:03d}" for k in range(100)], {"train": 1, "test": 1})
        return [f"--data.init_args.data_dir={tmp_path}"]
    if name.startswith("rimagenet"):
        wnids = [w for _, ws in load_table("restricted9") for w in ws]
        write_jpeg_tree(tmp_path / "imagenet", wnids, {"train": 1, "val": 1})
        return [f"--data.init_args.data_dir={tmp_path}", "--data.init_args.table=restricted9",
                "--data.init_args.num_workers=0"]
    return [f"--data.init_args.data_dir={data_root}", "--data.init_args.subset_size=8"]


@pytest.mark.parametrize("name", DEEP)
def test_deep_config_builds_with_its_callbacks_on_the_block(name, tmp_path, data_root):
    flags = data_flags(name, tmp_path, data_root)
    cli = train.build_cli(["--config", name, *flags, f"--output_dir={tmp_path / 'runs'}", *QUIET])
    module, family = cli.model, "resnet" if "resnet" in name else "mlp"
    assert type(module).__name__ == {"resnet": "ResNet18Module", "mlp": "MLPModule"}[family]
    assert module.regime.name == ("regular" if "regular" in name else "ours")
    callbacks = {type(cb).__name__: cb for cb in cli.trainer.callbacks}
    block = {"resnet": "net.layer4", "mlp": "net.hidden.1"}[family]
    assert module.num_outputs == {"cifar100": 100, "rimagenet": 9}.get(name.split("_")[0], 10)
    assert callbacks["JacobianRankCallback"].params == [block]
    if module.regime.name == "ours":
        assert "ConstraintBoundaryCallback" in callbacks
        assert {id(p) for p in module.constraint_groups()["hidden"].params} == {
            id(p) for p in module.get_submodule(block).parameters()}


def test_retired_placeholders_are_gone():
    for old in ("mnist_shallow", "cifar10_shallow", "cifar100_shallow", "rimagenet_shallow"):
        assert not (ROOT / "configs" / f"{old}.yaml").exists()


@pytest.mark.slow
def test_resnet18_narrow_trains_end_to_end_with_callbacks(data_root, tmp_path):
    out = tmp_path / "runs"
    train.main(["--config", "resnet18_narrow.yaml", "--data.init_args.subset_size=8", "--data.init_args.batch_size=4",
                "--trainer.max_steps=2", "--trainer.log_every_n_steps=1", "--run_test=false", f"--output_dir={out}",
                *QUIET])
    (metrics,) = out.glob("resnet18_narrow/*/metrics.csv")
    with open(metrics) as f:
        rows = list(csv.DictReader(f))
    logged = {k for row in rows for k, v in row.items() if v}
    assert {"train/loss", "train/acc", "jacobian/sigma_min", "jacobian/rank", "constraint/hidden/distance",
            "constraint/outer/min_abs"} <= logged
    distances = [float(r["constraint/hidden/distance"]) for r in rows if r.get("constraint/hidden/distance")]
    assert distances[0] == 0 and 0 < distances[-1] <= 20.0  # moved, inside the config's radius
    assert (metrics.parent / "checkpoints" / "last.ckpt").is_file()
