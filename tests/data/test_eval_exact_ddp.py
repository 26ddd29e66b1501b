"""Evaluation counts every sample exactly once under DDP: no padded shard, a sample-weighted loss (issue 7, point 11)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from eval_ddp_fit import evaluate
from torch.utils.data import TensorDataset

from lit_memo.data.sampling import eval_sampler

SCRIPT = Path(__file__).with_name("eval_ddp_fit.py")
ROOT = SCRIPT.parents[2]


def _trainer(world: int, rank: int) -> SimpleNamespace:
    return SimpleNamespace(distributed_sampler_kwargs={"num_replicas": world, "rank": rank} if world > 1 else None)


@pytest.mark.parametrize("n, world", [(297, 2), (7, 3), (5, 5), (10, 4)])
def test_shards_cover_every_sample_exactly_once(n, world):
    data = TensorDataset(torch.arange(n))
    shards = [list(eval_sampler(data, _trainer(world, r), "test")) for r in range(world)]
    assert sorted(i for shard in shards for i in shard) == list(range(n))
    assert max(map(len, shards)) - min(map(len, shards)) <= 1


def test_one_process_keeps_the_loader_s_own_order():
    assert eval_sampler(TensorDataset(torch.arange(3)), _trainer(1, 0), "test") is None


def test_a_split_smaller_than_the_world_is_refused():
    with pytest.raises(ValueError, match="the val split has 2 sample.*3 processes.*fewer devices"):
        eval_sampler(TensorDataset(torch.arange(2)), _trainer(3, 0), "val")


@pytest.mark.slow
def test_two_ranks_report_the_single_process_metrics(tmp_path, data_root):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}  # two ranks on two cores
    env.pop("LOCAL_RANK", None)
    proc = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ddp, single = torch.load(tmp_path / "metrics.pt"), evaluate(devices=1)
    # digits: 297 test and 101 val images; synthetic: 7 test samples; shards of unequal sizes on 2 ranks
    for run in ("digits_val", "digits_test", "synthetic_test"):
        split = run.split("_")[1]
        assert ddp[run][f"{split}/loss"] == pytest.approx(single[run][f"{split}/loss"], rel=1e-6), run
        if run.startswith("digits"):
            assert ddp[run][f"{split}/acc"] == single[run][f"{split}/acc"], run  # counts: exact


def test_the_loss_is_the_mean_over_samples_not_over_batches(make_trainer):
    import pytorch_lightning as pl
    import torch.nn.functional as F

    from lit_memo.data import SyntheticDataModule
    from lit_memo.modules import ShallowNetModule

    pl.seed_everything(0)
    data = SyntheticDataModule(n=4, d=3, n_test=7, full_batch=False, batch_size=3)  # batches of 3, 3 and 1
    model = ShallowNetModule(width=6, input_shape=(3,), regime="regular")
    (result,) = make_trainer().test(model, data, verbose=False)
    x, y = data.splits["test"].tensors
    with torch.no_grad():
        expected = F.mse_loss(model(x).reshape(y.shape), y)
    assert result["test/loss"] == pytest.approx(float(expected), rel=1e-6)


def test_the_refusal_comes_at_setup_before_any_training():
    from lit_memo.data import SyntheticDataModule

    data = SyntheticDataModule(n=8, d=3, n_val=1)
    data.trainer = SimpleNamespace(distributed_sampler_kwargs={"num_replicas": 2, "rank": 0}, global_rank=0, world_size=2)
    with pytest.raises(ValueError, match="the val split has 1 sample"):
        data.setup("fit")
