"""The shipped R-ImageNet tables by name: ``restricted9`` checked against ImageNet's class names."""

from __future__ import annotations

import pytest

from lit_memo.data import RImageNetDataModule
from lit_memo.data.rimagenet import NAMED_TABLES, load_table

# (super class, first and last ImageNet class name of its inclusive range), from the published ranges
RESTRICTED9 = [("dog", "Chihuahua", "Mexican_hairless"), ("cat", "tabby", "Egyptian_cat"),
               ("frog", "bullfrog", "tailed_frog"), ("turtle", "loggerhead", "box_turtle"),
               ("bird", "black_grouse", "black_swan"), ("primate", "orangutan", "squirrel_monkey"),
               ("fish", "barracouta", "puffer"), ("crab", "Dungeness_crab", "king_crab"),
               ("insect", "tiger_beetle", "dragonfly")]


def test_restricted9_ranges_by_imagenet_names(data_root):
    lines = [line.split("\t") for line in (data_root / "imagenet" / "wnid_index.txt").read_text().splitlines()]
    index = {name: int(i) for i, _, name in lines}
    wnid_of = {int(i): w for i, w, _ in lines}
    rows = load_table("restricted9")
    assert [name for name, _ in rows] == [name for name, _, _ in RESTRICTED9]
    for (name, wnids), (_, first, last) in zip(rows, RESTRICTED9):
        expected = [wnid_of[i] for i in range(index[first], index[last] + 1)]
        assert wnids == sorted(expected), name
    assert sum(len(w) for _, w in rows) == 203


def test_named_tables_and_default():
    assert load_table("zhang2021") == load_table() == load_table(None)
    dm = RImageNetDataModule(table="restricted9")
    assert dm.num_outputs == 9 and len(dm.wnids) == 203
    assert set(NAMED_TABLES) == {"zhang2021", "restricted9"}


def test_unknown_table_name_is_refused_naming_the_choices():
    with pytest.raises(FileNotFoundError, match=r"table='restricted10' is neither a file nor a shipped table "
                                                r"\(restricted9, zhang2021\)"):
        RImageNetDataModule(table="restricted10")
