"""scikit-learn's bundled 8 x 8 digits: real data with no download, for demos and quick tests."""

from __future__ import annotations

import torch

from lit_memo.data.image import ImageDataModule

PIXEL_MAX = 16.0  # load_digits counts set pixels in 4 x 4 blocks: values 0..16


class DigitsDataModule(ImageDataModule):
    """The 1,797 UCI handwritten digits of ``sklearn.datasets.load_digits`` (1 x 8 x 8, 10 classes).

    Not an experiment of the papers: the smallest real dataset on which the memorization regimes
    (Zhang et al. 2021; Ge et al. 2019) run in seconds on a CPU. Pixels are scaled to [0, 1].
    The last ``test_size`` digits form the test split, the rest the training split (unshuffled,
    as in scikit-learn's own digits example). ``data_dir``, ``download`` and the cache options
    are unused: the data ship with scikit-learn. Every other option of :class:`ImageDataModule`.

    Args:
        test_size: digits held out as the test split (default 297, our choice: 1,500 to train).
    """

    dataset_name = "digits"
    image_shape = (1, 8, 8)
    num_classes = 10
    pipelines = ("tensor",)

    def __init__(self, test_size: int = 297, **kwargs) -> None:
        super().__init__(**kwargs)
        if not 0 <= test_size < 1797:
            raise ValueError(f"data.init_args.test_size={test_size} must be between 0 and 1796")
        self.test_size = test_size
        self._data: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def _locate(self) -> None:
        if self._data:
            return
        from sklearn.datasets import load_digits

        digits = load_digits()
        x = torch.from_numpy(digits.images).float().div(PIXEL_MAX).unsqueeze(1)
        y = torch.from_numpy(digits.target).long()
        cut = len(y) - self.test_size
        self._data = {"train": (x[:cut], y[:cut]), "test": (x[cut:], y[cut:])}

    def _has_split(self, split: str) -> bool:
        return split == "train" or self.test_size > 0

    def _split_targets(self, split: str) -> torch.Tensor:
        return self._data[split][1]

    def _split_images(self, split: str, indices: torch.Tensor) -> torch.Tensor:
        return self._data[split][0][indices]
