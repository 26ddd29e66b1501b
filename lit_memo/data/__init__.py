"""LightningDataModules and dataset transforms."""

from lit_memo.data.base import MemoDataModule, RepeatedBatch
from lit_memo.data.cifar import CIFAR10DataModule, CIFAR100DataModule
from lit_memo.data.digits import DigitsDataModule
from lit_memo.data.image import ImageDataModule
from lit_memo.data.mnist import MNISTDataModule
from lit_memo.data.rimagenet import RImageNetDataModule
from lit_memo.data.synthetic import SyntheticDataModule

__all__ = [
    "CIFAR10DataModule",
    "CIFAR100DataModule",
    "DigitsDataModule",
    "ImageDataModule",
    "MNISTDataModule",
    "MemoDataModule",
    "RImageNetDataModule",
    "RepeatedBatch",
    "SyntheticDataModule",
]
