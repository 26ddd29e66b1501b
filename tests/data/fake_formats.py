"""Small datasets written during a test in the real on-disk formats (seeded, a few KB each)."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image


def write_cifar_pickles(root: Path, folder: str = "cifar-100-python", n_train: int = 40, n_test: int = 20,
                        num_classes: int = 100, seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """torchvision's CIFAR-100 layout: ``<root>/cifar-100-python/{train,test,meta}`` pickles.

    Each split is ``{"data": N x 3072 uint8 (R, G, B planes), "fine_labels": [...],
    "coarse_labels": [...]}``; ``meta`` lists the class names. Returns the images as ``N x 32 x 32 x 3``.
    """
    rng = np.random.default_rng(seed)
    out = root / folder
    out.mkdir(parents=True)
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
        labels = rng.integers(0, num_classes, n)
        entry = {"data": images.reshape(n, -1), "fine_labels": labels.tolist(), "coarse_labels": (labels // 5).tolist()}
        with open(out / split, "wb") as f:
            pickle.dump(entry, f)
        arrays[split] = (images.transpose(0, 2, 3, 1), labels)
    with open(out / "meta", "wb") as f:
        pickle.dump({"fine_label_names": [f"class{k:03d}" for k in range(num_classes)],
                     "coarse_label_names": [f"super{k:02d}" for k in range(num_classes // 5)]}, f)
    return arrays


def write_png_tree(root: Path, classes: Sequence[str], per_class: dict[str, int], size: int = 32,
                   seed: int = 0) -> None:
    """An image folder ``<root>/<split>/<class>/<k>.png`` of RGB PNGs, ``per_class[split]`` per class."""
    rng = np.random.default_rng(seed)
    for split, n in per_class.items():
        for cls in classes:
            folder = root / split / cls
            folder.mkdir(parents=True)
            for k in range(n):
                Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / f"{k:04d}.png")


def write_jpeg_tree(root: Path, wnids: Sequence[str], per_wnid: dict[str, int], seed: int = 0) -> None:
    """ILSVRC-style ``<root>/<split>/<wnid>/<wnid>_<k>.JPEG`` with small images of varied sizes."""
    rng = np.random.default_rng(seed)
    for split, n in per_wnid.items():
        for wnid in wnids:
            folder = root / split / wnid
            folder.mkdir(parents=True)
            for k in range(n):
                h, w = (int(v) for v in rng.integers(24, 64, 2))
                img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
                Image.fromarray(img).save(folder / f"{wnid}_{k}.JPEG", quality=90)
