"""Restricted ImageNet: the shipped table, user tables, and a small ILSVRC-style tree written in the test."""

from __future__ import annotations

import shutil

import pytest
import torch

from fake_formats import write_jpeg_tree
from lit_memo.data import RImageNetDataModule
from lit_memo.data.rimagenet import imagenet_wnids, load_table

PAPER_ORDER = ["bird", "turtle", "lizard", "snake", "spider", "crab", "dog", "cat", "bigcat", "beetle", "butterfly",
               "monkey", "fish", "fungus", "musical-instrument", "sportsball", "car-truck", "train", "clothing", "boat"]

# table order differs from wnid order on purpose: labels must follow the table, not the folders
TABLE = """# a small user table
bird   10-11            # brambling, goldfinch
fish   n01440764 1      # tench by wnid, goldfish by index
shark  2-4
"""


@pytest.fixture
def tree(tmp_path):
    wnids = imagenet_wnids()
    used = [wnids[i] for i in (0, 1, 2, 3, 4, 10, 11)]
    write_jpeg_tree(tmp_path / "ilsvrc", used + [wnids[500]], {"train": 3, "val": 1})  # wnids[500]: not in the table
    table = tmp_path / "table.txt"
    table.write_text(TABLE)
    return tmp_path / "ilsvrc", table


def test_shipped_table_is_the_papers_twenty_super_classes_in_order():
    rows = load_table()
    wnids = imagenet_wnids()
    assert [name for name, _ in rows] == PAPER_ORDER
    assert rows[0][1] == wnids[10:15]  # bird = classes 10-14, the one row the paper's text recovers
    assert dict(rows)["dog"] == wnids[151:269] and dict(rows)["fungus"] == wnids[991:998]
    members = [w for _, ws in rows for w in ws]
    assert len(members) == len(set(members)) == 319


def test_shipped_wnid_list_is_the_shared_index(data_root):
    shared = data_root / "imagenet" / "wnid_index.txt"
    lines = [line.split("\t") for line in shared.read_text().splitlines()]
    assert imagenet_wnids() == [w for _, w, _ in lines]
    assert [int(i) for i, _, _ in lines] == list(range(1000))


def test_labels_follow_the_table_not_the_folders(tree):
    root, table = tree
    dm = RImageNetDataModule(data_dir=str(root), table=str(table), batch_size=4)
    assert dm.num_outputs == 3 and dm.input_shape == (3, 224, 224) and dm.task == "classification"
    dm.setup("fit")
    wnids = imagenet_wnids()
    expected = {wnids[10]: 0, wnids[11]: 0, wnids[0]: 1, wnids[1]: 1, wnids[2]: 2, wnids[3]: 2, wnids[4]: 2}
    ds = dm._datasets["train"]
    assert len(ds) == 21 and dm._datasets["val"].classes == ["bird", "fish", "shark"]  # wnids[500] ignored
    for path, target in ds.samples:
        assert expected[path.split("/")[-2]] == target
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (4, 3, 224, 224) and y.dtype == torch.long
    assert dm.has_test and len(dm.splits["test"]) == 7
    xt1, _ = dm.splits["test"][0]
    xt2, _ = dm.splits["test"][0]
    assert torch.equal(xt1, xt2)  # resize 256 + centre crop 224: deterministic at test time


def test_shared_options_on_rimagenet(tree):
    root, table = tree
    dm = RImageNetDataModule(data_dir=str(root), table=str(table), random_labels=True, subset_size=10,
                             normalize=True, stats_images=5, unit_norm=True, flatten=True, seed=0)
    dm.setup("fit")
    assert len(dm.splits["train"]) == 10 and dm.input_shape == (3 * 224 * 224,)
    assert dm.mean.shape == (3,) and (dm.std > 0).all()
    x, y = dm.splits["train"][0]
    assert x.shape == (3 * 224 * 224,) and abs(x.norm().item() - 1) < 1e-4
    again = RImageNetDataModule(data_dir=str(root), table=str(table), random_labels=True, subset_size=10, seed=0)
    again.setup("fit")
    assert torch.equal(again.train_targets, dm.train_targets)


def test_missing_wnid_folders_are_listed(tree):
    root, table = tree
    wnids = imagenet_wnids()
    shutil.rmtree(root / "val" / wnids[3])
    shutil.rmtree(root / "val" / wnids[10])
    with pytest.raises(FileNotFoundError, match=rf"2 of the 7 wnid folders .* missing from {root}/val: "
                                                rf"{wnids[3]}, {wnids[10]}"):
        RImageNetDataModule(data_dir=str(root), table=str(table)).setup("fit")


def test_default_table_needs_every_wnid(tree):
    root, _ = tree
    with pytest.raises(FileNotFoundError, match=r"317 of the 319 wnid folders .* \.\.\. \(297 more\)"):
        RImageNetDataModule(data_dir=str(root)).prepare_data()


def test_no_val_folder_means_no_test_split(tree):
    root, table = tree
    shutil.rmtree(root / "val")
    dm = RImageNetDataModule(data_dir=str(root), table=str(table))
    dm.setup("fit")
    assert not dm.has_test and dm.test_dataloader() == []


@pytest.mark.parametrize("text, match", [
    ("bird n01530575 n09999999\n", r"table.txt:1: unknown wnid 'n09999999'"),
    ("bird 10-14\n\nfish 1000\n", r"table.txt:3: '1000' is outside the ImageNet class indices"),
    ("bird 14-10\n", r"'14-10' is outside the ImageNet class indices 0-999 \(or reversed\)"),
    ("bird ten\n", r"'ten' is neither an ImageNet class index"),
    ("bird 10\nbird 11\n", r"super class 'bird' appears twice"),
    ("bird 10-14\nfinch 12\n", r"class n01532829 \(index 12\) is listed twice \(also in 'bird'\)"),
    ("bird\n", r"super class 'bird' lists no ImageNet classes"),
    ("# nothing\n", r"the table lists no super classes"),
])
def test_bad_tables_fail_at_construction(tmp_path, text, match):
    table = tmp_path / "table.txt"
    table.write_text(text)
    with pytest.raises(ValueError, match=match):
        RImageNetDataModule(table=str(table))


def test_rimagenet_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=rf"looked for {tmp_path}/imagenet/train/<wnid>/ .*image-net\.org"):
        RImageNetDataModule(data_dir=str(tmp_path)).prepare_data()
    with pytest.raises(ValueError, match=r"data\.init_args\.download=True is not possible for ImageNet"):
        RImageNetDataModule(download=True)
    with pytest.raises(ValueError, match=r"pca_dim=10 is not supported for R-ImageNet"):
        RImageNetDataModule(pca_dim=10)
    with pytest.raises(ValueError, match=r"pipeline='tensor' is not available for R-ImageNet"):
        RImageNetDataModule(pipeline="tensor")
