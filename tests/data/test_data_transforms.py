"""The pure dataset transforms: seeded draws, label corruption, unit norm, noise, PCA, batch augmentation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA
from torchvision import transforms as T

from lit_memo.data.transforms import (
    FeatureMap,
    PCAProjection,
    channel_stats,
    noisy_labels,
    perturbation,
    random_crop_flip,
    random_labels,
    seeded_permutation,
    unit_norm,
)


def test_seeded_draws_ignore_the_global_rng():
    torch.manual_seed(1)
    a = seeded_permutation(1000, 7), random_labels(1000, 10, 7)
    torch.manual_seed(2)
    torch.rand(100)
    b = seeded_permutation(1000, 7), random_labels(1000, 10, 7)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(seeded_permutation(1000, 7), seeded_permutation(1000, 8))
    assert sorted(seeded_permutation(1000, 7).tolist()) == list(range(1000))


@pytest.mark.parametrize("num_classes", [2, 10, 100])
def test_random_labels_differ_from_true_ones_at_rate_one_minus_one_over_c(num_classes):
    n = 20000
    true = torch.randint(0, num_classes, (n,), generator=torch.Generator().manual_seed(0))
    rand = random_labels(n, num_classes, seed=3)
    rate = (rand != true).float().mean().item()
    expected = 1 - 1 / num_classes
    assert abs(rate - expected) < 4 * (expected * (1 - expected) / n) ** 0.5 + 1e-9
    counts = torch.bincount(rand, minlength=num_classes).float()
    assert counts.min() > 0.8 * n / num_classes  # uniform over the classes


def test_label_noise_corrupts_exactly_the_fraction_with_other_classes():
    true = torch.arange(1000) % 10
    noisy = noisy_labels(true, 0.25, 10, seed=0)
    assert (noisy != true).sum().item() == 250
    assert noisy.min() >= 0 and noisy.max() < 10
    assert torch.equal(noisy, noisy_labels(true, 0.25, 10, seed=0))
    assert torch.equal(noisy_labels(true, 0.0, 10, seed=0), true)
    assert (noisy_labels(true, 1.0, 10, seed=0) != true).all()


def test_unit_norm_rows_and_zero_rows():
    x = torch.randn(5, 3, 4, 4) * 7
    x[2] = 0
    y = unit_norm(x)
    norms = y.flatten(1).norm(dim=1)
    assert torch.allclose(norms[[0, 1, 3, 4]], torch.ones(4), atol=1e-6)
    assert norms[2] == 0 and not torch.isnan(y).any()


def test_perturbation_is_a_function_of_seed_split_and_sample():
    a = perturbation(torch.tensor([3, 10, 42]), (20,), 0.5, seed=0, split="train")
    b = perturbation([42, 3], (20,), 0.5, seed=0, split="train")
    assert torch.equal(a[2], b[0]) and torch.equal(a[0], b[1])  # any subset, any order: same noise per sample
    assert not torch.equal(a[0], perturbation([3], (20,), 0.5, seed=0, split="test")[0])
    assert not torch.equal(a[0], perturbation([3], (20,), 0.5, seed=1, split="train")[0])
    big = perturbation(range(500), (100,), 0.01, seed=0, split="train")
    assert abs(big.std().item() - 0.01) < 5e-4 and abs(big.mean().item()) < 5e-4
    assert (big[:-1] != big[1:]).any(dim=1).all()  # neighbouring samples' seeds give different noise


def test_channel_stats_match_torch_and_ignore_batching():
    x = torch.rand(50, 3, 8, 8)
    mean, std = channel_stats([x])
    assert torch.allclose(mean, x.mean(dim=(0, 2, 3)), atol=1e-6)
    assert torch.allclose(std, x.std(dim=(0, 2, 3), unbiased=False), atol=1e-6)
    m2, s2 = channel_stats(x[i:i + 7] for i in range(0, 50, 7))
    assert torch.equal(mean, m2) and torch.equal(std, s2)


def test_pca_projection_is_sklearn_transform_fitted_on_the_given_rows():
    gen = torch.Generator().manual_seed(0)
    train, test = torch.randn(200, 30, generator=gen), torch.randn(50, 30, generator=gen)
    ours = PCAProjection.fit(train, 5)
    ref = PCA(5, svd_solver="full").fit(train.double().numpy())
    expected = torch.from_numpy(ref.transform(test.double().numpy())).float()
    got = ours(test)
    # principal directions are defined up to sign
    signs = torch.sign((got * expected).sum(dim=0))
    assert torch.allclose(got * signs, expected, atol=1e-4)
    assert torch.allclose(ours.mean, train.mean(dim=0), atol=1e-6)
    fm = FeatureMap((1, 5, 6), unit_norm=True, pca=ours)
    assert fm(test.view(50, 1, 5, 6)).shape == (50, 5) and fm.output_shape() == (5,)


def _as_crops(img: torch.Tensor, padding: int) -> list[torch.Tensor]:
    """Every output RandomCrop(padding) + RandomHorizontalFlip can give for ``img``."""
    c, h, w = img.shape
    padded = T.functional.pad(img, [padding])
    crops = [padded[:, i:i + h, j:j + w] for i in range(2 * padding + 1) for j in range(2 * padding + 1)]
    return crops + [cr.flip(-1) for cr in crops]


def test_batch_crop_flip_gives_torchvision_crops_with_all_offsets():
    x = torch.randint(0, 256, (6, 3, 8, 8), dtype=torch.uint8)
    seen = set()
    gen = torch.Generator().manual_seed(0)
    for _ in range(60):
        out = random_crop_flip(x, padding=2, generator=gen)
        assert out.dtype == torch.uint8 and out.shape == x.shape
        for img, res in zip(x, out):
            matches = [k for k, cr in enumerate(_as_crops(img, 2)) if torch.equal(cr, res)]
            assert matches, "not a crop/flip of the zero-padded image"
            seen.update(matches)
    assert len(seen) > 0.9 * 2 * 25  # per-sample offsets and flips cover (nearly) all 50 outcomes
    unflipped = random_crop_flip(x, padding=2, flip=False, generator=gen)
    assert all(any(torch.equal(cr, r) for cr in _as_crops(i, 2)[:25]) for i, r in zip(x, unflipped))


def test_feature_map_order_and_shapes():
    x = torch.rand(4, 1, 3, 3)
    assert FeatureMap((1, 3, 3)).identity and FeatureMap((1, 3, 3))(x) is x
    flat = FeatureMap((1, 3, 3), flatten=True, unit_norm=True)
    assert flat.output_shape() == (9,)
    assert torch.allclose(flat(x).norm(dim=1), torch.ones(4))
    assert FeatureMap((1, 3, 3), unit_norm=True).output_shape() == (1, 3, 3)
    assert FeatureMap((1, 3, 3)).output_shape(pca_dim=4) == (4,)
    assert np.isclose(FeatureMap((1, 3, 3), unit_norm=True)(x).flatten(1).norm(dim=1), 1).all()
