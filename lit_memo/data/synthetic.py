"""Synthetic memorization data: Zhang et al. (2021) Sec. 5.1, Fig. 4."""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch.utils.data import DataLoader, TensorDataset

from lit_memo.data.base import MemoDataModule, RepeatedBatch, float_sketch
from lit_memo.data.sampling import check_eval_splits, eval_sampler
from lit_memo.data.transforms import make_generator
from lit_memo.models.shallow import OneHiddenLayerNet

LABELS = ("gaussian", "sign", "teacher", "uniform")
INPUTS = ("sphere", "cube")


class SyntheticDataModule(MemoDataModule):
    """n inputs ``x_i ~ N(0, I_d)`` normalised to unit norm, with regression labels.

    Args:
        n: training samples (the set to memorize).
        d: input dimension.
        inputs: ``sphere`` (x ~ N(0, I_d), normalised: uniform on the sphere) or ``cube`` (x uniform
            in [-1, 1]^d, then normalised: Ge et al. 2019 App. A.1).
        labels: ``gaussian`` (y ~ N(0, 1)), ``sign`` (y uniform in {-1, +1}), ``uniform`` (y uniform
            in [-1, 1], Ge et al. App. A.1) or ``teacher``
            (y = a random tanh network of ``teacher_width`` units, LeCun init, applied to x).
        n_val, n_test: held-out samples from the same distribution (0: no such split).
        full_batch: every step sees the whole training set (gradient descent, as in the paper);
            otherwise shuffled mini-batches of ``batch_size``.
        batches_per_epoch: full batches that make one Lightning epoch (validation,
            checkpointing and epoch-level logging happen once per epoch); with the module's
            ``steps_per_batch: K`` an epoch is ``K * batches_per_epoch`` GD steps.
        seed: draws the data; the same seed gives the same data on every rank and every run.
    """

    def __init__(
        self,
        n: int = 1000,
        d: int = 5,
        labels: str = "gaussian",
        inputs: str = "sphere",
        teacher_width: int = 10,
        n_val: int = 0,
        n_test: int = 0,
        full_batch: bool = True,
        batch_size: int = 64,
        batches_per_epoch: int = 1000,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if labels not in LABELS:
            raise ValueError(f"data.labels must be one of {LABELS}, got {labels!r}")
        if inputs not in INPUTS:
            raise ValueError(f"data.inputs must be one of {INPUTS}, got {inputs!r}")
        for name, value, low in (("n", n, 1), ("d", d, 1), ("teacher_width", teacher_width, 1), ("n_val", n_val, 0),
                                 ("n_test", n_test, 0), ("batch_size", batch_size, 1), ("batches_per_epoch", batches_per_epoch, 1)):
            if value < low:
                raise ValueError(f"data.{name} must be >= {low}, got {value}")
        self.save_hyperparameters()
        self.input_shape, self.num_outputs, self.task = (d,), 1, "regression"
        self.splits: dict[str, TensorDataset] = {}

    def make_tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """All ``n + n_val + n_test`` samples (training first), drawn from ``seed`` alone.

        The training samples come from their own stream, so adding or resizing a held-out split
        never changes the training set (a resume with another ``n_test`` is not another data set).
        """
        hp = self.hparams
        held = hp.n_val + hp.n_test
        gen = torch.Generator().manual_seed(hp.seed)
        gen_held = make_generator(hp.seed, "held_out")

        def inputs(count: int, g: torch.Generator) -> torch.Tensor:
            x = torch.randn(count, hp.d, generator=g) if hp.inputs == "sphere" else torch.rand(count, hp.d, generator=g) * 2 - 1
            return x / x.norm(dim=1, keepdim=True)

        x = torch.cat([inputs(hp.n, gen), inputs(held, gen_held)])
        if hp.labels == "gaussian":
            y = torch.cat([torch.randn(hp.n, generator=gen), torch.randn(held, generator=gen_held)])
        elif hp.labels == "uniform":
            y = torch.cat([torch.rand(k, generator=g) * 2 - 1 for k, g in ((hp.n, gen), (held, gen_held))])
        elif hp.labels == "sign":
            y = torch.cat([torch.randint(0, 2, (k,), generator=g) for k, g in ((hp.n, gen), (held, gen_held))])
            y = y.float() * 2 - 1
        else:
            teacher = OneHiddenLayerNet(hp.d, hp.teacher_width, 1, activation="tanh")
            with torch.no_grad():
                for p in teacher.parameters():
                    p.normal_(0.0, 1.0 / p[0].numel() ** 0.5, generator=gen)
                # the training rows on their own: a matmul's rounding depends on its row count, so
                # labelling train and held-out rows together would tie the targets to n_val/n_test
                y = torch.cat([teacher(x[: hp.n]), teacher(x[hp.n:])]).squeeze(1)
        return x, y

    def setup(self, stage: Optional[str] = None) -> None:
        if self.splits:
            return
        hp = self.hparams
        x, y = self.make_tensors()
        bounds = {"train": (0, hp.n), "val": (hp.n, hp.n + hp.n_val), "test": (hp.n + hp.n_val, len(x))}
        self.splits = {k: TensorDataset(x[a:b], y[a:b]) for k, (a, b) in bounds.items() if b > a}
        self.check_training_set()  # a checkpoint loaded before setup is checked here
        check_eval_splits(self.splits, self.trainer)  # too few samples for the ranks: refused now, not after fit

    def training_set_fingerprint(self) -> dict[str, Any]:
        """Sketches of the training inputs and targets, compared up to rounding: drawn and
        normalised in float32 (a teacher's labels through a matmul), their last bits depend on
        the machine's SIMD and BLAS, while another seed, n, d or label kind changes them wholesale."""
        if "train" not in self.splits:
            return {}
        x, y = self.splits["train"].tensors
        return {"inputs": float_sketch(x), "targets": float_sketch(y)}

    def train_dataloader(self):
        data = self.splits["train"]
        if not self.hparams.full_batch:
            return DataLoader(data, batch_size=self.hparams.batch_size, shuffle=True)
        # each DDP rank takes every world-th sample; DDP's gradient average is then full-batch GD
        # (exactly so when world divides n, since every shard has the same size)
        rank, world = self.world()
        x, y = data.tensors
        return RepeatedBatch((x[rank::world], y[rank::world]), self.hparams.batches_per_epoch)

    def _eval_loader(self, split: str):
        data = self.splits.get(split)
        if data is None:
            return []
        # under DDP each rank evaluates its unpadded shard (eval_sampler), in one batch when full_batch
        return DataLoader(data, batch_size=len(data) if self.hparams.full_batch else self.hparams.batch_size,
                          sampler=eval_sampler(data, self.trainer, split))

    def val_dataloader(self):
        return self._eval_loader("val")

    def test_dataloader(self):
        return self._eval_loader("test")

    @property
    def has_test(self) -> bool:
        return self.hparams.n_test > 0
