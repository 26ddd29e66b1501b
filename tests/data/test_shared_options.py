"""The options every real-data DataModule shares (DESIGN.md "Data"), on scikit-learn's digits."""

from __future__ import annotations

import types

import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA

from lit_memo.data import DigitsDataModule


def make(**kwargs) -> DigitsDataModule:
    dm = DigitsDataModule(**kwargs)
    dm.setup("fit")
    return dm


def epoch(loader) -> dict[bytes, torch.Tensor]:
    """sample (by its input bytes) -> label, over one pass of a shuffled loader."""
    out = {}
    for x, y in loader:
        for xi, yi in zip(x, y):
            out[xi.numpy().tobytes()] = yi.clone()
    return out


def test_digits_are_sklearn_digits_in_unit_range():
    dm = make(batch_size=None)
    ref = load_digits()
    x, y = dm.splits["train"].__getitems__(range(1500))
    assert dm.input_shape == (1, 8, 8) and dm.num_outputs == 10 and dm.task == "classification"
    assert len(dm.splits["train"]) == 1500 and len(dm.splits["test"]) == 297 and dm.has_test
    # whole training set = a seeded permutation of the first 1500 digits
    assert torch.equal(x, torch.from_numpy(ref.images[dm.train_indices.numpy()]).float().unsqueeze(1) / 16)
    assert torch.equal(y, torch.from_numpy(ref.target[dm.train_indices.numpy()]))
    assert x.min() == 0 and x.max() == 1
    (batch,) = list(dm.train_dataloader())  # batch_size null: full-batch gradient descent
    assert len(batch[0]) == 1500


def test_random_labels_fixed_across_epochs_and_at_the_expected_rate():
    dm = make(random_labels=True, batch_size=100, seed=5)
    first, second = epoch(dm.train_dataloader()), epoch(dm.train_dataloader())
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)
    rate = (dm.train_targets != dm.true_targets).float().mean().item()
    assert abs(rate - 0.9) < 4 * (0.9 * 0.1 / 1500) ** 0.5  # 1 - 1/C, C = 10
    # test labels stay true: chance-level test accuracy is what Table 3 of Zhang et al. measures
    x, y = dm.splits["test"].__getitems__(range(297))
    assert torch.equal(y, torch.from_numpy(load_digits().target[-297:]))


def test_random_labels_identical_on_every_rank_whatever_the_global_rng():
    labels = []
    for rank in (0, 1):
        torch.manual_seed(100 + rank)  # each rank's global RNG is in another state
        dm = DigitsDataModule(random_labels=True, seed=3)
        dm.trainer = types.SimpleNamespace(global_rank=rank, world_size=2, strategy=types.SimpleNamespace(
            root_device=torch.device("cpu")))
        dm.setup("fit")
        labels.append((dm.train_indices, dm.train_targets, dm.training_set_fingerprint()))
    assert torch.equal(labels[0][0], labels[1][0]) and torch.equal(labels[0][1], labels[1][1])
    assert labels[0][2] == labels[1][2]
    assert not torch.equal(labels[0][1], make(random_labels=True, seed=4).train_targets)


def test_subset_is_the_first_n_of_a_seeded_permutation():
    a, b = make(subset_size=100, seed=1), make(subset_size=100, seed=1)
    assert torch.equal(a.train_indices, b.train_indices) and len(a.splits["train"]) == 100
    big = make(subset_size=300, seed=1)
    assert torch.equal(big.train_indices[:100], a.train_indices)  # a prefix of the same permutation
    assert not torch.equal(make(subset_size=100, seed=2).train_indices, a.train_indices)
    assert len(set(a.train_indices.tolist())) == 100


def test_val_split_is_held_out_with_true_labels():
    dm = make(val_size=200, random_labels=True, seed=0)
    assert len(dm.splits["train"]) == 1300 and len(dm.splits["val"]) == 200
    train_x, _ = dm.splits["train"].__getitems__(range(1300))
    val_x, val_y = dm.splits["val"].__getitems__(range(200))
    train_rows = {r.numpy().tobytes() for r in train_x}
    assert not any(r.numpy().tobytes() in train_rows for r in val_x)
    digits = load_digits()
    lookup = {torch.from_numpy(im).float().div(16).unsqueeze(0).numpy().tobytes(): t
              for im, t in zip(digits.images, digits.target)}
    assert all(lookup[x.numpy().tobytes()] == y for x, y in zip(val_x, val_y))


def test_label_noise_fraction():
    dm = make(label_noise=0.2, seed=0)
    assert (dm.train_targets != dm.true_targets).sum().item() == 300


def test_float_targets_for_squared_loss():
    dm = make(targets="float", flatten=True)
    assert dm.task == "regression" and dm.num_outputs == 1 and dm.input_shape == (64,)
    x, y = next(iter(dm.train_dataloader()))
    assert y.dtype == torch.float32 and x.shape[1:] == (64,)
    assert set(y.unique().tolist()) <= set(map(float, range(10)))


def test_unit_norm_rows_and_fixed_perturbation():
    dm = make(unit_norm=True, flatten=True, noise_std=0.01, batch_size=256)
    first, second = epoch(dm.train_dataloader()), epoch(dm.train_dataloader())
    assert first.keys() == second.keys()  # same inputs every epoch: the noise was drawn once
    clean = make(unit_norm=True, flatten=True, batch_size=256)
    x, _ = dm.splits["train"].__getitems__(range(1500))
    x0, _ = clean.splits["train"].__getitems__(range(1500))
    assert torch.allclose(x0.norm(dim=1), torch.ones(1500), atol=1e-6)
    noise = x - x0
    assert abs(noise.std().item() - 0.01) < 5e-4
    # the same digit gets the same noise in another subset: noise belongs to the sample
    sub = make(unit_norm=True, flatten=True, noise_std=0.01, subset_size=10)
    xs, _ = sub.splits["train"].__getitems__(range(10))
    pos = [dm.train_indices.tolist().index(i) for i in sub.train_indices.tolist()]
    assert torch.equal(xs, x[pos])


def test_pca_is_fitted_on_the_training_subset_only():
    dm = make(subset_size=400, unit_norm=True, pca_dim=10, seed=0)
    assert dm.input_shape == (10,)
    digits = load_digits()
    raw = torch.from_numpy(digits.images).float().div(16).flatten(1)
    raw = raw / raw.norm(dim=1, keepdim=True)
    train = raw[dm.train_indices]
    ref = PCA(10, svd_solver="full").fit(train.double().numpy())
    assert torch.allclose(dm.pca.mean, torch.from_numpy(ref.mean_).float(), atol=1e-6)
    test_x, _ = dm.splits["test"].__getitems__(range(297))
    expected = torch.from_numpy(ref.transform(raw[-297:].double().numpy())).float()
    signs = torch.sign((test_x * expected).sum(dim=0))
    assert torch.allclose(test_x * signs, expected, atol=1e-4)
    # fitted on the whole training set instead, the test features would differ
    other = make(unit_norm=True, pca_dim=10, seed=0)
    assert not torch.allclose(other.pca.mean, dm.pca.mean)


def test_normalize_uses_training_subset_statistics():
    dm = make(subset_size=500, normalize=True, seed=0)
    x, _ = dm.splits["train"].__getitems__(range(500))
    assert abs(x.mean().item()) < 1e-5 and abs(x.std(unbiased=False).item() - 1) < 1e-4
    fixed = make(normalize=True, mean=[0.5], std=[0.25])
    xf, _ = fixed.splits["train"].__getitems__([0])
    raw = torch.from_numpy(load_digits().images[fixed.train_indices[0].item()]).float() / 16
    assert torch.allclose(xf[0, 0], (raw - 0.5) / 0.25)


@pytest.mark.parametrize("kwargs, match", [
    (dict(subset_size=2000), r"data\.init_args\.subset_size=2000 exceeds the 1500 training images"),
    (dict(subset_size=1400, val_size=200), r"subset_size=1400 exceeds the 1300 training images left after val_size"),
    (dict(val_size=1500), r"val_size=1500 leaves no training images"),
    (dict(pca_dim=20, subset_size=10), r"pca_dim=20 exceeds the 10 training samples"),
])
def test_errors_found_at_setup_name_the_field(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make(**kwargs)


@pytest.mark.parametrize("kwargs, match", [
    (dict(subset_size=0), r"subset_size=0 must be >= 1"),
    (dict(random_labels=True, label_noise=0.1), r"label_noise=0.1 cannot be combined with random_labels"),
    (dict(label_noise=1.5), r"label_noise=1.5 must be a fraction"),
    (dict(targets="onehot"), r"targets='onehot' must be one of"),
    (dict(pipeline="torchvision"), r"pipeline='torchvision' is not available for digits"),
    (dict(pca_dim=65), r"pca_dim=65 must be between 1 and the input dimension 64"),
    (dict(normalize=True, mean=[0.5]), r"mean=\[0.5\] needs its partner"),
    (dict(normalize=True, mean=[0.1, 0.2], std=[1.0, 1.0]), r"mean=\[0.1, 0.2\] must list one value per channel \(1\)"),
    (dict(mean=[0.1], std=[1.0]), r"mean=\[0.1\] is only used with normalize=true"),
    (dict(batch_size=0), r"batch_size=0 must be >= 1"),
    (dict(noise_std=-1.0), r"noise_std=-1.0 must be >= 0"),
])
def test_errors_found_at_construction_name_the_field(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DigitsDataModule(**kwargs)


def test_resume_digest_check():
    dm = make(random_labels=True, seed=0)
    state = dm.state_dict()
    again = DigitsDataModule(random_labels=True, seed=0)
    again.load_state_dict(state)  # before setup: checked when setup builds the labels
    again.setup("fit")
    other = DigitsDataModule(random_labels=True, seed=1)
    other.load_state_dict(state)
    with pytest.raises(ValueError, match="differ from those the checkpoint was trained on"):
        other.setup("fit")
    built = make(random_labels=False)
    with pytest.raises(ValueError, match="random_labels: True -> False"):
        built.load_state_dict(state)
