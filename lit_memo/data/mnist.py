"""MNIST: Zhang et al. (2021) App. H (Fig. 7) and Ge et al. (2019) Sec. 6 / App. C (Fig. 6-10)."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset
from torchvision.datasets import MNIST

from lit_memo.data.image import ImageDataModule


class MNISTDataModule(ImageDataModule):
    """The 60,000 / 10,000 MNIST digits, 1 x 28 x 28, read with ``torchvision.datasets.MNIST``.

    ``data_dir`` is torchvision's root: the files are ``<data_dir>/MNIST/raw/*-ubyte`` (the
    layout of ``../shared/data``). For Ge et al.'s experiments use ``unit_norm: true``,
    ``targets: float``, ``noise_std: 0.01`` (Fig. 7), or ``pca_dim: 100`` with ``noise_std: 0.05``
    (Fig. 8), and ``random_labels: true`` (Fig. 9-10). Every option of :class:`ImageDataModule`.
    """

    dataset_name = "MNIST"
    image_shape = (1, 28, 28)
    num_classes = 10

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._datasets: dict[str, MNIST] = {}

    def _locate(self) -> None:
        if self._datasets:
            return
        try:
            self._datasets = {split: MNIST(str(self.data_dir), train=split == "train", download=False)
                              for split in self.split_names}
        except RuntimeError as err:
            raise FileNotFoundError(
                f"MNIST not found: looked for the four IDX files in {self.data_dir / 'MNIST' / 'raw'}. "
                "Set data.init_args.download=true to fetch it with torchvision, or point data.init_args.data_dir "
                f"(default ${{LIT_MEMO_DATA}}) at the folder that holds MNIST/raw/"
            ) from err

    def _download(self) -> None:
        for train in (True, False):
            MNIST(str(self.data_dir), train=train, download=True)

    def _split_targets(self, split: str) -> torch.Tensor:
        return self._datasets[split].targets.long()

    def _split_images(self, split: str, indices: torch.Tensor) -> torch.Tensor:
        return self._datasets[split].data[indices].unsqueeze(1)

    def _split_dataset(self, split: str) -> Dataset:
        return self._datasets[split]
