"""DDP loss weights (``MemorizationModule._train_share``) read from the ranks' train loaders, in one
process: a stand-in strategy answers the all-gather with the other ranks' batch sizes."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from pytorch_lightning.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from lit_memo.data import RepeatedBatch
from lit_memo.modules import ShallowNetModule
from lit_memo.modules.base import train_batch_sizes

DATA = TensorDataset(torch.randn(101, 2), torch.randn(101))


@pytest.mark.parametrize("loader", [
    DataLoader(DATA, batch_size=32), DataLoader(DATA, batch_size=32, drop_last=True), DataLoader(DATA, batch_size=200),
    DataLoader(DATA, batch_size=101), DataLoader(DATA, batch_size=8, shuffle=True),
    DataLoader(DATA, batch_size=16, sampler=UnrepeatedDistributedSampler(DATA, num_replicas=3, rank=2, shuffle=False)),
], ids=["last_short", "drop_last", "one_short", "one_full", "shuffled", "unrepeated_shard"])
def test_batch_sizes_read_from_the_sampler_are_those_the_loader_yields(loader):
    sizes = [len(y) for _, y in loader]
    assert train_batch_sizes(loader) == (len(sizes), sizes[0], sizes[-1])


def test_batch_sizes_of_a_repeated_batch_and_of_loaders_that_do_not_tell():
    assert train_batch_sizes(RepeatedBatch(DATA.tensors, 7)) == (7, 101, 101)
    assert train_batch_sizes(DataLoader(DATA, batch_size=None)) is None  # no automatic batching
    assert train_batch_sizes([DATA.tensors]) is None


class Strategy:
    """All-gather: this rank's row among the others' (``rows``); reduce: the sum of the ranks' n."""

    def __init__(self, rank: int, rows: list, ns: list[int]) -> None:
        self.rank, self.rows, self.ns, self.gathers, self.reduces = rank, rows, ns, 0, 0

    def all_gather(self, t: torch.Tensor) -> torch.Tensor:
        self.gathers += 1
        rows = list(self.rows)
        rows[self.rank] = t.tolist()
        return torch.tensor(rows)

    def reduce(self, t: torch.Tensor, reduce_op: str) -> torch.Tensor:
        assert reduce_op == "sum"
        self.reduces += 1
        return t + sum(n for r, n in enumerate(self.ns) if r != self.rank)


def attach(module, rank: int, world: int, loader, rows, ns=()):
    strategy = Strategy(rank, rows, list(ns))
    module._trainer = SimpleNamespace(world_size=world, global_rank=rank, train_dataloader=loader, strategy=strategy)
    return strategy


def shard_loaders(n: int, world: int, steps: int) -> list:
    x, y = torch.randn(n, 3), torch.randn(n)
    return [RepeatedBatch((x[r::world], y[r::world]), steps) for r in range(world)]


def test_uneven_full_batch_shares_make_ddp_average_the_whole_batch_mean_gathered_once():
    n, world = 500, 3  # shards of 167, 167, 166
    loaders = shard_loaders(n, world, 5)
    rows = [list(train_batch_sizes(loader)) for loader in loaders]
    per_sample = torch.rand(n, dtype=torch.float64)
    averaged = 0.0
    for rank, loader in enumerate(loaders):
        module = ShallowNetModule(input_shape=(3,), width=4)
        strategy = attach(module, rank, world, loader, rows)
        shares = [module._train_share(len(loader.batch[1])) for _ in range(5)]
        assert strategy.gathers == 1 and strategy.reduces == 0 and len(set(shares)) == 1
        averaged += shares[0] * per_sample[rank::world].mean() / world  # what DDP's equal-weight average gives
        module._trainer.train_dataloader = RepeatedBatch(loader.batch, 5)  # Lightning rebuilt the loader
        assert module._train_share(len(loader.batch[1])) == shares[0] and strategy.gathers == 2
        with pytest.raises(RuntimeError, match=r"batch of 100 samples.*batches of \[16[67]\]"):
            module._train_share(100)
    assert averaged.item() == pytest.approx(per_sample.mean().item(), rel=1e-12)


def test_equal_shards_need_no_weight():
    loaders = [DataLoader(DATA, batch_size=10, sampler=DistributedSampler(DATA, num_replicas=2, rank=r)) for r in (0, 1)]
    rows = [list(train_batch_sizes(loader)) for loader in loaders]  # padded: 51 each, batches 10, ..., 10, 1
    module = ShallowNetModule(input_shape=(2,), width=4)
    strategy = attach(module, 1, 2, loaders[1], rows)
    assert [module._train_share(n) for n in (10, 10, 1)] == [None] * 3 and strategy.reduces == 0


@pytest.mark.parametrize("rows", [[[4, 32, 19], [4, 32, 5]],  # last batches 19 and 5: ratio not the first's
                                  [[-1, -1, -1], [1, 50, 50]]],  # rank 0's loader does not tell
                         ids=["ratio_changes", "unknown_loader"])
def test_otherwise_the_share_is_reduced_every_step(rows):
    module = ShallowNetModule(input_shape=(2,), width=4)
    strategy = attach(module, 1, 2, DataLoader(DATA, batch_size=32), rows, ns=[51, 50])
    assert module._train_share(50) == pytest.approx(50 * 2 / 101)
    assert module._train_share(50) == pytest.approx(50 * 2 / 101)
    assert strategy.gathers == 1 and strategy.reduces == 2
