"""Squared loss on the whole training set of a finished Ge et al. run (REPRODUCTION.md, G-pca).

The runs log ``train/loss`` on one mini-batch every 50 steps, so their last value is one
batch's; this reads the run's ``last.ckpt``, rebuilds its data module from the hyperparameters
the checkpoint holds (same subset, noise, PCA and labels) and prints the mean, median and
largest per-sample squared error over all training samples.

    python reproduction/ge_train_mse.py runs/repro/ge_pca/noise0.05/*/*/checkpoints/last.ckpt
"""

from __future__ import annotations

import argparse
import importlib

import torch


def load_class(path: str):
    module, name = path.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)


def per_sample_errors(ckpt_path: str) -> torch.Tensor:
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    dm_hp = dict(ckpt["datamodule_hyper_parameters"])
    dm = load_class(dm_hp.pop("_class_path"))(**{k: v for k, v in dm_hp.items() if not k.startswith("_")})
    module = load_class(ckpt["hyper_parameters"]["_class_path"]).load_from_checkpoint(ckpt_path, map_location="cpu")
    module.eval()
    dm.prepare_data()
    dm.setup("fit")
    errors = []
    with torch.no_grad():
        for x, y in dm.train_dataloader():
            errors.append((module(x).reshape(y.shape) - y).pow(2))
    return torch.cat(errors)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoints", nargs="+")
    for path in parser.parse_args().checkpoints:
        e = per_sample_errors(path)
        print(f"{path}: n={len(e)} train MSE {e.mean():.3g}, median {e.median():.3g}, "
              f"99th percentile {e.quantile(0.99):.3g}, max {e.max():.3g}")


if __name__ == "__main__":
    main()
