"""CIFAR-10 and CIFAR-100: Zhang et al. (2021) App. H (Fig. 8) and Table 3 (random-label CIFAR-10)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch
from torch.utils.data import Dataset
from torchvision import transforms as T
from torchvision.datasets import CIFAR10, CIFAR100, ImageFolder

from lit_memo.data.folder import load_folder_images
from lit_memo.data.image import ImageDataModule
from lit_memo.data.transforms import random_crop_flip

PADDING = 4  # Zhang et al. App. H.2: "padded with 4 pixels of zeros on all sides"


class CIFAR10DataModule(ImageDataModule):
    """CIFAR-10 (50,000 / 10,000 images, 3 x 32 x 32), from either of two layouts under ``data_dir``:

    - an image folder ``<data_dir>/CIFAR10/{train,test}/<class>/*.png`` (or ``<data_dir>`` itself
      holding ``train/`` and ``test/``), class folders sorted in torchvision's class order: how
      ``../shared/data/CIFAR10`` is stored;
    - torchvision's pickles ``<data_dir>/cifar-10-batches-py`` (what ``download: true`` fetches).

    Args:
        augment: the paper's training augmentation, zero-pad 4 + random 32 x 32 crop + horizontal
            flip (Zhang et al. App. H.2). Combine with ``normalize: true`` for the paper's global
            mean/std normalisation.
        **kwargs: every option of :class:`ImageDataModule`.
    """

    dataset_name = "CIFAR-10"
    folder_name = "CIFAR10"
    torchvision_class = CIFAR10
    image_shape = (3, 32, 32)
    num_classes = 10

    def __init__(self, augment: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.augment = augment
        self._datasets: dict[str, Dataset] = {}
        self._layout: Optional[str] = None

    def _folder_root(self) -> Optional[Path]:
        for root in (self.data_dir / self.folder_name, self.data_dir):
            if (root / "train").is_dir():
                return root
        return None

    def _locate(self) -> None:
        if self._layout is not None:
            return
        root = self._folder_root()
        if root is not None:
            self._datasets = {split: ImageFolder(str(root / split)) for split in self.split_names
                              if (root / split).is_dir()}
            for split, folder in self._datasets.items():
                if len(folder.classes) != self.num_classes:
                    raise FileNotFoundError(f"{self.dataset_name}: {folder.root} has {len(folder.classes)} class "
                                            f"folders, expected {self.num_classes}")
            self._layout = "folder"
            return
        pickles = self.data_dir / self.torchvision_class.base_folder
        if pickles.is_dir():
            try:
                self._datasets = {split: self.torchvision_class(str(self.data_dir), train=split == "train")
                                  for split in self.split_names}
            except RuntimeError as err:  # torchvision checks every file's md5
                raise FileNotFoundError(f"{self.dataset_name}: the pickles in {pickles} are incomplete or "
                                        "corrupted; delete the folder and set data.init_args.download=true") from err
            self._layout = "pickle"
            return
        raise FileNotFoundError(
            f"{self.dataset_name} not found: looked for an image folder "
            f"{self.data_dir / self.folder_name}/train/<class>/*.png (or {self.data_dir}/train/) and for "
            f"torchvision's pickles in {pickles}. Set "
            "data.init_args.download=true to fetch it with torchvision, or point data.init_args.data_dir "
            "(default ${LIT_MEMO_DATA}) at the folder that holds it"
        )

    def _download(self) -> None:
        for train in (True, False):
            self.torchvision_class(str(self.data_dir), train=train, download=True)

    def _has_split(self, split: str) -> bool:
        self._locate()
        return split in self._datasets

    def _split_targets(self, split: str) -> torch.Tensor:
        return torch.as_tensor(self._datasets[split].targets, dtype=torch.long)

    def _split_images(self, split: str, indices: torch.Tensor) -> torch.Tensor:
        ds = self._datasets[split]
        if self._layout == "folder":
            return load_folder_images(ds, self.image_shape, indices, self.cache_dir, self.hparams.num_workers)
        return torch.from_numpy(ds.data[indices.numpy()]).permute(0, 3, 1, 2).contiguous()

    def _split_dataset(self, split: str) -> Dataset:
        return self._datasets[split]

    def _pil_transforms(self, train: bool) -> list:
        if not train:
            return []
        return [T.RandomCrop(self.image_shape[1:], padding=PADDING), T.RandomHorizontalFlip()]

    def _augment_batch(self, x: torch.Tensor) -> torch.Tensor:
        return random_crop_flip(x, PADDING, flip=True)


class CIFAR100DataModule(CIFAR10DataModule):
    """CIFAR-100 (100 fine classes), same layouts: ``<data_dir>/CIFAR100/{train,test}/<class>/`` or
    torchvision's ``<data_dir>/cifar-100-python``. Same options as :class:`CIFAR10DataModule`."""

    dataset_name = "CIFAR-100"
    folder_name = "CIFAR100"
    torchvision_class = CIFAR100
    num_classes = 100
