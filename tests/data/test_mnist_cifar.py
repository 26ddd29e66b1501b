"""MNIST and CIFAR-10 on the real offline data; CIFAR-100 on small files in its real formats."""

from __future__ import annotations

import pytest
import torch
import torchvision.datasets.cifar as tv_cifar
from torchvision.datasets import CIFAR100

import lit_memo.data.folder as folder_mod
from fake_formats import write_cifar_pickles, write_png_tree
from lit_memo.data import CIFAR10DataModule, CIFAR100DataModule, MNISTDataModule
from lit_memo.data.image import TensorSplit

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def everything(ds, n: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The first n (default all) samples of a split: one batched fetch (tensor pipeline) or item by item."""
    n = len(ds) if n is None else n
    if isinstance(ds, TensorSplit):
        return ds.__getitems__(range(n))
    xs, ys = zip(*(ds[i] for i in range(n)))
    return torch.stack(xs), torch.stack([torch.as_tensor(y) for y in ys])


def both_pipelines(cls, **kwargs):
    out = []
    for pipeline in ("tensor", "torchvision"):
        dm = cls(pipeline=pipeline, **kwargs)
        dm.setup("fit")
        out.append(dm)
    return out


# -- MNIST -------------------------------------------------------------------------------------
def test_mnist_real_data(data_root):
    dm = MNISTDataModule(data_dir=str(data_root), subset_size=1000, seed=0)
    dm.setup("fit")
    assert dm.input_shape == (1, 28, 28) and dm.num_outputs == 10
    assert len(dm.splits["train"]) == 1000 and len(dm.splits["test"]) == 10000
    x, y = everything(dm.splits["train"])
    assert x.shape == (1000, 1, 28, 28) and 0 <= x.min() and x.max() == 1
    full_targets = dm._split_targets("train")
    assert len(full_targets) == 60000 and torch.equal(y, full_targets[dm.train_indices])
    assert full_targets[0] == 5  # the first MNIST training digit is a 5
    assert torch.bincount(y, minlength=10).min() > 60  # a seeded permutation, not the first 1000 in file order


@pytest.mark.parametrize("kwargs", [
    dict(),
    dict(normalize=True, flatten=True),
    dict(unit_norm=True, noise_std=0.01, targets="float", random_labels=True),  # Ge et al. Fig. 9
])
def test_mnist_tensor_pipeline_equals_torchvision_pipeline(data_root, kwargs):
    a, b = both_pipelines(MNISTDataModule, data_dir=str(data_root), subset_size=256, seed=1, **kwargs)
    for split in ("train", "test"):
        xa, ya = a.splits[split].__getitems__(range(256))
        xb, yb = everything(b.splits[split], 256)
        assert torch.equal(xa, xb) and torch.equal(ya, yb), split


def test_mnist_pca_pipelines_agree_and_ge_norms(data_root):
    # Ge et al. Fig. 8 inputs (their k = 100 dims; fewer samples and dims here to keep the SVD quick)
    kwargs = dict(data_dir=str(data_root), subset_size=200, unit_norm=True, pca_dim=50, noise_std=0.05, seed=0)
    a, b = both_pipelines(MNISTDataModule, **kwargs)
    assert a.input_shape == (50,)
    xa, _ = everything(a.splits["train"])
    xb, _ = everything(b.splits["train"])
    assert torch.allclose(xa, xb, atol=1e-5)  # the same PCA; only matmul blocking differs
    g = MNISTDataModule(data_dir=str(data_root), subset_size=500, unit_norm=True, noise_std=0.01, flatten=True)
    g.setup("fit")
    x, _ = everything(g.splits["train"])
    # unit-norm rows plus N(0, 0.01^2) per coordinate: E||x||^2 = 1 + 784e-4
    sq = x.norm(dim=1) ** 2
    assert abs(sq.mean().item() - (1 + 784e-4)) < 0.01 and (sq - 1.0784).abs().max() < 0.15


def test_mnist_perturbation_fixed_across_epochs_in_torchvision_pipeline(data_root):
    dm = MNISTDataModule(data_dir=str(data_root), pipeline="torchvision", subset_size=8, noise_std=0.1, seed=0)
    dm.setup("fit")
    ds = dm.splits["train"]
    assert all(torch.equal(ds[i][0], ds[i][0]) for i in range(8))


def test_mnist_missing_data_says_where_and_how(tmp_path):
    dm = MNISTDataModule(data_dir=str(tmp_path))
    where = rf"looked for the four IDX files in {tmp_path}/MNIST/raw.*download=true"
    with pytest.raises(FileNotFoundError, match=where):
        dm.prepare_data()
    with pytest.raises(FileNotFoundError, match="data.init_args.data_dir"):
        dm.setup("fit")


def test_mnist_subset_larger_than_dataset(data_root):
    with pytest.raises(ValueError, match=r"data\.init_args\.subset_size=70000 exceeds the 60000 training images"):
        MNISTDataModule(data_dir=str(data_root), subset_size=70000).setup("fit")


# -- CIFAR-10 (image folder, the real offline copy) ----------------------------------------------
@pytest.fixture(scope="module")
def cifar_cache(tmp_path_factory):
    """One decoded-image cache for the module: the 10,000 test PNGs are decoded once, not per test."""
    return str(tmp_path_factory.mktemp("cifar_cache"))


def test_cifar10_image_folder(data_root, tmp_path):
    dm = CIFAR10DataModule(data_dir=str(data_root), subset_size=2000, normalize=True, cache_dir=str(tmp_path), seed=0)
    dm.setup("fit")
    assert dm.input_shape == (3, 32, 32) and dm.num_outputs == 10
    assert dm._datasets["train"].classes == CIFAR10_CLASSES  # torchvision's CIFAR10 class order
    assert len(dm._datasets["train"]) == 50000 and len(dm.splits["test"]) == 10000
    # the statistics of 2000 training images are close to the published full-set ones
    assert torch.allclose(dm.mean, torch.tensor([0.4914, 0.4822, 0.4465]), atol=0.01)
    assert torch.allclose(dm.std, torch.tensor([0.2470, 0.2435, 0.2616]), atol=0.01)
    # 2000 of 50000 train files: decoded directly; all of test: decoded once and cached
    cached = list(tmp_path.glob("*.pt"))
    assert len(cached) == 1 and "test" in cached[0].name


def test_cifar10_tensor_pipeline_equals_torchvision_pipeline(data_root, cifar_cache):
    a, b = both_pipelines(CIFAR10DataModule, data_dir=str(data_root), subset_size=200, normalize=True,
                          unit_norm=True, noise_std=0.01, cache_dir=cifar_cache, seed=3)
    xa, ya = everything(a.splits["train"])
    xb, yb = everything(b.splits["train"])
    assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert torch.equal(a.mean, b.mean) and torch.equal(a.std, b.std)
    ta, _ = a.splits["test"].__getitems__(range(100))
    tb, _ = everything(b.splits["test"], 100)
    assert torch.equal(ta, tb)


def test_cifar10_augmentation_in_both_pipelines(data_root, cifar_cache):
    a, b = both_pipelines(CIFAR10DataModule, data_dir=str(data_root), subset_size=64, augment=True,
                          cache_dir=cifar_cache, batch_size=64, seed=0)
    plain = CIFAR10DataModule(data_dir=str(data_root), subset_size=64, cache_dir=cifar_cache, seed=0)
    plain.setup("fit")
    x0, _ = everything(plain.splits["train"])
    xa1, _ = a.splits["train"].__getitems__(range(64))
    xa2, _ = a.splits["train"].__getitems__(range(64))
    assert xa1.shape == x0.shape and not torch.equal(xa1, xa2)  # new crops and flips each time
    # each augmented image is the original, zero-padded by 4, cropped at some offset, maybe flipped
    padded = torch.nn.functional.pad(x0, (4, 4, 4, 4))
    for img, out in zip(padded[:8], xa1[:8]):
        crops = [img[:, i:i + 32, j:j + 32] for i in range(9) for j in range(9)]
        assert any(torch.equal(out, c) or torch.equal(out, c.flip(-1)) for c in crops)
    xb, _ = b.splits["train"][0]
    assert xb.shape == (3, 32, 32)
    xt, _ = a.splits["test"].__getitems__([0])
    assert torch.equal(xt, plain.splits["test"].__getitems__([0])[0])  # no augmentation at test time


def test_cifar_missing_data_says_where_and_how(tmp_path):
    with pytest.raises(FileNotFoundError, match=rf"CIFAR-10 not found: looked for an image folder {tmp_path}/CIFAR10.*"
                                                r"cifar-10-batches-py.*download=true"):
        CIFAR10DataModule(data_dir=str(tmp_path)).prepare_data()


# -- CIFAR-100 on generated files ---------------------------------------------------------------
@pytest.fixture
def no_md5(monkeypatch):
    """torchvision checks the official files' md5; the small test files cannot match it."""
    monkeypatch.setattr(CIFAR100, "_check_integrity", lambda self: True)
    monkeypatch.setattr(tv_cifar, "check_integrity", lambda *args, **kwargs: True)


def test_cifar100_torchvision_pickles(tmp_path, no_md5):
    arrays = write_cifar_pickles(tmp_path, n_train=40, n_test=20)
    a, b = both_pipelines(CIFAR100DataModule, data_dir=str(tmp_path), seed=0)
    assert a.num_outputs == 100 and a._layout == "pickle"
    x, y = everything(a.splits["train"])
    images, labels = arrays["train"]
    idx = a.train_indices.numpy()
    assert torch.equal(x, torch.from_numpy(images[idx]).permute(0, 3, 1, 2).float() / 255)
    assert torch.equal(y, torch.from_numpy(labels[idx]))
    xb, yb = everything(b.splits["train"])
    assert torch.equal(x, xb) and torch.equal(y, yb)
    xt, yt = everything(a.splits["test"])
    assert torch.equal(yt, torch.from_numpy(arrays["test"][1]))


def test_cifar100_image_folder_and_cache(tmp_path, monkeypatch):
    classes = [f"class{k:03d}" for k in range(100)]
    write_png_tree(tmp_path / "CIFAR100", classes, {"train": 2, "test": 1})
    cache = tmp_path / "cache"
    a, b = both_pipelines(CIFAR100DataModule, data_dir=str(tmp_path), cache_dir=str(cache), random_labels=True)
    xa, ya = everything(a.splits["train"])
    xb, yb = everything(b.splits["train"])
    assert a._layout == "folder" and len(ya) == 200 and torch.equal(xa, xb) and torch.equal(ya, yb)
    assert len(list(cache.glob("*.pt"))) == 2  # whole splits were needed: both decoded once and cached
    monkeypatch.setattr(folder_mod, "decode_files", lambda *a, **k: pytest.fail("decoded again despite the cache"))
    again = CIFAR100DataModule(data_dir=str(tmp_path), cache_dir=str(cache), random_labels=True)
    again.setup("fit")
    assert torch.equal(everything(again.splits["train"])[0], xa)


def test_cache_key_follows_the_files(tmp_path):
    write_png_tree(tmp_path / "CIFAR10", CIFAR10_CLASSES, {"train": 1, "test": 1})
    dm = CIFAR10DataModule(data_dir=str(tmp_path), cache_dir=str(tmp_path / "cache"))
    dm.setup("fit")
    key = folder_mod.folder_key(dm._datasets["train"])
    write_png_tree(tmp_path / "extra", ["airplane"], {"train": 1}, seed=9)
    new_file = tmp_path / "extra" / "train" / "airplane" / "0000.png"
    new_file.replace(tmp_path / "CIFAR10" / "train" / "airplane" / "0001.png")
    dm2 = CIFAR10DataModule(data_dir=str(tmp_path), cache_dir=str(tmp_path / "cache"))
    dm2.setup("fit")
    assert folder_mod.folder_key(dm2._datasets["train"]) != key and len(dm2.splits["train"]) == 11
    assert not list((tmp_path / "cache").glob("*.tmp-*"))  # atomic writes leave no partial files


def test_cifar_image_folder_with_wrong_class_count(tmp_path):
    write_png_tree(tmp_path / "CIFAR10", ["a", "b"], {"train": 1})
    with pytest.raises(FileNotFoundError, match="has 2 class folders, expected 10"):
        CIFAR10DataModule(data_dir=str(tmp_path)).setup("fit")


def test_download_runs_only_when_the_data_is_missing(tmp_path, no_md5, monkeypatch):
    calls = []

    def fake_download(self):  # stands in for torchvision's download, which needs the network
        calls.append(self.data_dir)
        write_cifar_pickles(self.data_dir, n_train=10, n_test=5)

    monkeypatch.setattr(CIFAR100DataModule, "_download", fake_download)
    dm = CIFAR100DataModule(data_dir=str(tmp_path), download=True)
    dm.prepare_data()
    dm.setup("fit")
    assert calls == [tmp_path] and len(dm.splits["train"]) == 10
    again = CIFAR100DataModule(data_dir=str(tmp_path), download=True)
    again.prepare_data()
    assert calls == [tmp_path]  # present now: not fetched again
