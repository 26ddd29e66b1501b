"""LightningDataModules and dataset transforms."""

from lit_memo.data.base import MemoDataModule, RepeatedBatch
from lit_memo.data.synthetic import SyntheticDataModule

__all__ = ["MemoDataModule", "RepeatedBatch", "SyntheticDataModule"]
