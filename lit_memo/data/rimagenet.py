"""Restricted ImageNet: Zhang et al. (2021) Sec. 5.2, App. H.2 / H.5 (Fig. 5, 9).

ILSVRC-2012 restricted to super classes, each the union of some of the 1000 classes. Which
classes form which super class comes from a table (the package's reconstruction of the paper's
Table 2, ``tables/rimagenet.txt``, or the user's own), resolved through the sorted list of the
1000 wnids shipped with the package, so labels never depend on which folders happen to exist.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Optional

import torch
from torch.utils.data import Dataset
from torchvision import transforms as T
from torchvision.datasets import ImageFolder

from lit_memo.data.image import ImageDataModule

TABLE = "rimagenet.txt"
# tables shipped with the package, selected by name (``table: restricted9``)
NAMED_TABLES = {"zhang2021": TABLE, "restricted9": "restricted9.txt"}
WNIDS = "imagenet_wnids.txt"
RESIZE, CROP = 256, 224  # the usual ImageNet evaluation: shorter side 256, centre 224 x 224
_WNID = re.compile(r"n\d{8}")


def _table_text(name: str) -> str:
    return resources.files("lit_memo.data").joinpath("tables", name).read_text()


def imagenet_wnids() -> list[str]:
    """The 1000 ILSVRC-2012 wnids, sorted: position = ImageNet class index."""
    wnids = [line.split("\t")[1] for line in _table_text(WNIDS).splitlines() if line and not line.startswith("#")]
    assert len(wnids) == 1000 and wnids == sorted(wnids), "tables/imagenet_wnids.txt is damaged"
    return wnids


def load_table(path: Optional[str | Path] = None) -> list[tuple[str, list[str]]]:
    """Super classes of a table as ``(name, wnids)`` in file order.

    ``path``: a table file, the name of a shipped table (``zhang2021``: the reconstruction of the
    paper's 20 super classes, the default; ``restricted9``: the 9-class Restricted ImageNet of the
    robustness literature), or None for the default.

    Raises ValueError naming the file and line for an unknown wnid, an index outside 0..999, a
    malformed token, a repeated super-class name, or a class placed in two super classes.
    """
    if path is None or str(path) in NAMED_TABLES:
        shipped = NAMED_TABLES[str(path)] if path is not None else TABLE
        source, text = f"lit_memo/data/tables/{shipped}", _table_text(shipped)
    elif not Path(path).is_file():
        raise FileNotFoundError(f"data.init_args.table={str(path)!r} is neither a file nor a shipped table "
                                f"({', '.join(sorted(NAMED_TABLES))})")
    else:
        source, text = str(path), Path(path).read_text()
    wnids = imagenet_wnids()
    known = set(wnids)
    rows: list[tuple[str, list[str]]] = []
    owner: dict[str, str] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        where = f"{source}:{lineno}"
        name, tokens = fields[0], fields[1:]
        if not tokens:
            raise ValueError(f"{where}: super class {name!r} lists no ImageNet classes")
        if any(name == other for other, _ in rows):
            raise ValueError(f"{where}: super class {name!r} appears twice")
        members: list[str] = []
        for tok in tokens:
            if _WNID.fullmatch(tok):
                if tok not in known:
                    raise ValueError(f"{where}: unknown wnid {tok!r}: not one of the 1000 ILSVRC-2012 classes")
                members.append(tok)
                continue
            m = re.fullmatch(r"(\d+)(?:-(\d+))?", tok)
            if m is None:
                raise ValueError(f"{where}: {tok!r} is neither an ImageNet class index, a range a-b, nor a wnid")
            lo, hi = int(m[1]), int(m[2] or m[1])
            if not 0 <= lo <= hi <= 999:
                raise ValueError(f"{where}: {tok!r} is outside the ImageNet class indices 0-999 (or reversed)")
            members += wnids[lo:hi + 1]
        for wnid in members:
            if owner.setdefault(wnid, name) != name or members.count(wnid) > 1:
                raise ValueError(f"{where}: ImageNet class {wnid} (index {wnids.index(wnid)}) is listed twice "
                                 f"(also in {owner[wnid]!r})")
        rows.append((name, sorted(members)))
    if not rows:
        raise ValueError(f"{source}: the table lists no super classes")
    return rows


class SuperClassFolder(ImageFolder):
    """An ImageNet split folder ``<wnid>/<image>`` read for the wnids of a table only, labelled by super class."""

    def __init__(self, root: str, table: list[tuple[str, list[str]]], **kwargs) -> None:
        self.table = table
        super().__init__(root, **kwargs)

    def find_classes(self, directory: str) -> tuple[list[str], dict[str, int]]:
        names = [name for name, _ in self.table]
        return names, {wnid: k for k, (_, wnids) in enumerate(self.table) for wnid in wnids}


class RImageNetDataModule(ImageDataModule):
    """R-ImageNet at 224 px, through the torchvision (PIL) pipeline.

    ``data_dir`` holds the ILSVRC-2012 images as ``train/<wnid>/*`` and ``val/<wnid>/*`` (the
    validation images sorted into class folders), directly or under ``<data_dir>/imagenet/``.
    Training images are randomly resized-cropped to 224 (``RandomResizedCrop``); test images
    resized to 256 and centre-cropped to 224 ("randomly cropped during training and
    center-cropped during testing", App. H.2). ``val/`` is this module's test split.

    Args:
        table: a super-class table file (format in ``lit_memo/data/tables/rimagenet.txt``) or a
            shipped table's name: ``zhang2021`` (default, the package's reconstruction of the paper's
            20 super classes) or ``restricted9`` (the 9-class, 203-class-index Restricted ImageNet
            of the robustness literature).
        augment: random resized crops for training (else the test-time resize and centre crop).
        stats_images: with ``normalize`` and no ``mean``/``std``, the statistics come from this
            many training images drawn with ``seed`` (default 10000, our choice: a pass over the
            whole training set at setup would take hours).
        **kwargs: the options of :class:`ImageDataModule` except ``download`` (ImageNet needs an
            image-net.org account) and ``pca_dim`` (PCA would need every 150,528-dim image in memory).
    """

    dataset_name = "R-ImageNet"
    image_shape = (3, CROP, CROP)
    pipelines = ("torchvision",)
    split_names = ("train", "val")

    def __init__(self, table: Optional[str] = None, augment: bool = True, stats_images: int = 10000,
                 pipeline: str = "torchvision", **kwargs) -> None:
        self.table = load_table(table)
        self.num_classes = len(self.table)
        super().__init__(pipeline=pipeline, **kwargs)
        if self.hparams.download:
            raise self._fail("download", "is not possible for ImageNet: get ILSVRC-2012 from image-net.org")
        if self.hparams.pca_dim is not None:
            raise self._fail("pca_dim", "is not supported for R-ImageNet (PCA needs every training image in memory)")
        if stats_images < 1:
            raise ValueError(f"data.init_args.stats_images={stats_images} must be >= 1")
        self.augment, self.stats_images = augment, stats_images
        self._root: Optional[Path] = None
        self._datasets: dict[str, SuperClassFolder] = {}

    @property
    def wnids(self) -> list[str]:
        return sorted(w for _, ws in self.table for w in ws)

    def _locate(self) -> None:
        if self._root is not None:
            return
        candidates = [self.data_dir / "imagenet", self.data_dir]
        root = next((c for c in candidates if (c / "train").is_dir()), None)
        if root is None:
            looked = " and ".join(f"{c}/train/<wnid>/" for c in candidates)
            raise FileNotFoundError(
                f"R-ImageNet needs the ILSVRC-2012 images: looked for {looked}. torchvision cannot download "
                "ImageNet: get ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar from image-net.org, extract "
                "them into train/<wnid>/ and val/<wnid>/ (validation images sorted into class folders), and "
                "point data.init_args.data_dir (default ${LIT_MEMO_DATA}) at that folder"
            )
        for split in self.split_names:
            folder = root / split
            if not folder.is_dir():
                continue
            missing = [w for w in self.wnids if not (folder / w).is_dir()]
            if missing:
                shown = ", ".join(missing[:20]) + (f", ... ({len(missing) - 20} more)" if len(missing) > 20 else "")
                raise FileNotFoundError(f"R-ImageNet: {len(missing)} of the {len(self.wnids)} wnid folders the table "
                                        f"needs are missing from {folder}: {shown}")
        self._root = root
        self._datasets = {split: SuperClassFolder(str(root / split), self.table)
                          for split in self.split_names if (root / split).is_dir()}

    def _has_split(self, split: str) -> bool:
        self._locate()
        return split in self._datasets

    def _split_targets(self, split: str) -> torch.Tensor:
        return torch.as_tensor(self._datasets[split].targets, dtype=torch.long)

    def _split_dataset(self, split: str) -> Dataset:
        return self._datasets[split]

    def _pil_transforms(self, train: bool) -> list:
        return [T.RandomResizedCrop(CROP)] if train else [T.Resize(RESIZE), T.CenterCrop(CROP)]
