"""Dataset transforms of the memorization papers, as pure functions of tensors and a seed.

Everything random here is drawn from the DataModule's ``seed`` through a generator of its own,
never from the global RNG: the training set (subset, labels, perturbation) is then the same on
every DDP rank, in every run with the same config and after a resume.

- subset: the first n samples of a seeded permutation (the set to memorize).
- random labels: Zhang et al. (2021) App. H.6 (after Zhang et al. 2017) and Ge et al. (2019)
  Sec. 6 "MNIST with random labels": every label replaced by a uniform draw from the classes.
- label noise: a given fraction of the labels replaced by a different class.
- unit-norm rows, Gaussian perturbation, PCA: the input preparation of Ge et al. (2019) App. C.
- channel statistics and pad-crop-flip on batches: Zhang et al. (2021) App. H.2 (CIFAR).
"""

from __future__ import annotations

import zlib
from typing import Iterable, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from threadpoolctl import threadpool_limits


def derive_seed(seed: int, *tags: object) -> int:
    """A 63-bit seed for one purpose (``tags``) derived from the run's data ``seed``.

    Each purpose gets an independent stream, so enabling one option (say label noise) never
    changes what another (the subset) draws.
    """
    words = [int(seed) & 0xFFFFFFFF, (int(seed) >> 32) & 0xFFFFFFFF]
    words += [zlib.crc32(str(tag).encode()) for tag in tags]
    return int(np.random.SeedSequence(words).generate_state(1, np.uint64)[0] >> np.uint64(1))


def make_generator(seed: int, *tags: object) -> torch.Generator:
    return torch.Generator().manual_seed(derive_seed(seed, *tags))


def seeded_permutation(n: int, seed: int) -> torch.Tensor:
    """The permutation of ``range(n)`` whose first k entries are the subset of size k."""
    return torch.randperm(n, generator=make_generator(seed, "subset"))


def random_labels(n: int, num_classes: int, seed: int) -> torch.Tensor:
    """``n`` labels drawn uniformly from ``0..num_classes-1`` (they match the true label w.p. 1/C)."""
    return torch.randint(0, num_classes, (n,), generator=make_generator(seed, "random_labels"))


def noisy_labels(labels: torch.Tensor, fraction: float, num_classes: int, seed: int) -> torch.Tensor:
    """``round(fraction * n)`` seeded positions get a label drawn uniformly from the *other* classes.

    Drawing from the other classes makes ``fraction`` the exact share of wrong labels.
    """
    gen = make_generator(seed, "label_noise")
    n = len(labels)
    k = int(round(fraction * n))
    out = labels.clone()
    where = torch.randperm(n, generator=gen)[:k]
    shift = torch.randint(1, num_classes, (k,), generator=gen)
    out[where] = (labels[where] + shift) % num_classes
    return out


def unit_norm(x: torch.Tensor) -> torch.Tensor:
    """Each sample (row of the data matrix, all its coordinates) scaled to Euclidean norm 1.

    An all-zero sample stays zero rather than becoming NaN.
    """
    norms = x.flatten(1).norm(dim=1).clamp_min(torch.finfo(x.dtype).tiny)
    return x / norms.view(-1, *([1] * (x.dim() - 1)))


def perturbation(indices: Sequence[int] | torch.Tensor, shape: Sequence[int], std: float, seed: int,
                 split: str) -> torch.Tensor:
    """Gaussian noise ``N(0, std^2)`` per coordinate for the samples ``indices`` of ``split``.

    Sample i's noise depends only on ``(seed, split, i)``: drawn from a generator seeded for that
    sample, so it is the same in every epoch, in both pipelines and for any subset containing i,
    and no ``n x d`` noise table is needed for large inputs.
    """
    base = derive_seed(seed, "perturbation", split)
    gen = torch.Generator()
    idx = indices.tolist() if isinstance(indices, torch.Tensor) else list(indices)
    out = torch.empty(len(idx), *shape)
    for row, i in enumerate(idx):
        # the CPU generator keys mt19937 on the low 32 bits only: keep the per-sample seeds distinct there
        gen.manual_seed((base + int(i)) & 0xFFFFFFFF)
        out[row].normal_(0.0, std, generator=gen)
    return out


def channel_stats(batches: Iterable[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and (population) std over every pixel of every image in ``batches``.

    "Global mean and standard deviation are computed on all the training pixels" (Zhang et al.
    2021, App. H.2); accumulated in float64 so the batching does not matter.
    """
    total = sq = None
    count = 0
    for x in batches:
        # per-image sums in float32 (deterministic per image), accumulated across images in float64
        s = x.sum(dim=(2, 3)).double().sum(dim=0)
        q = (x * x).sum(dim=(2, 3)).double().sum(dim=0)
        total, sq = (s, q) if total is None else (total + s, sq + q)
        count += x.shape[0] * x.shape[2] * x.shape[3]
    if total is None:
        raise ValueError("no images to compute the channel statistics from")
    mean = total / count
    std = (sq / count - mean * mean).clamp_min(0).sqrt()
    return mean.float(), std.float()


class PCAProjection:
    """Projection onto the top-k principal directions of the training features (Ge et al. Fig. 8).

    Fitted once with scikit-learn on the training subset (centred, not whitened) and applied to
    every split as ``(x - mean) @ components.T``, exactly ``sklearn.decomposition.PCA.transform``.
    """

    def __init__(self, mean: torch.Tensor, components: torch.Tensor, explained_variance_ratio: torch.Tensor):
        self.mean, self.components = mean, components
        self.explained_variance_ratio = explained_variance_ratio

    @classmethod
    def fit(cls, features: torch.Tensor, k: int) -> "PCAProjection":
        import sklearn
        from sklearn.decomposition import PCA

        x = features.flatten(1).double().cpu().numpy()
        n, d = x.shape
        # exact solvers only (sklearn's "auto" goes randomized for small k): the eigenvectors of the
        # d x d covariance when n >= d (sklearn >= 1.5; 60,000 x 784 MNIST in about a second), else
        # the SVD of the n x d data
        has_eigh = tuple(int(v) for v in sklearn.__version__.split(".")[:2]) >= (1, 5)
        # one BLAS thread: OpenBLAS's pool fights torch's still-spinning OpenMP threads for the cores
        # (a 200 x 784 SVD took 3 s instead of 0.05 s on 2 cores)
        with threadpool_limits(1, user_api="blas"):
            pca = PCA(n_components=k, svd_solver="covariance_eigh" if n >= d and has_eigh else "full").fit(x)
        return cls(torch.from_numpy(pca.mean_).float(), torch.from_numpy(pca.components_).float(),
                   torch.from_numpy(pca.explained_variance_ratio_).float())

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        return (x - self.mean.to(x.device)) @ self.components.to(x.device).T

    def to(self, device: torch.device | str) -> "PCAProjection":
        return PCAProjection(self.mean.to(device), self.components.to(device), self.explained_variance_ratio)


class FeatureMap:
    """The per-sample input transforms that follow pixel normalisation, in the papers' order.

    unit-norm rows -> PCA to k dims -> flatten (Ge et al. App. C: "normalize the samples to have
    norm 1. Then we do the PCA"); the Gaussian perturbation is added after this map, by sample index.
    Works on a batch ``(N, C, H, W)`` and returns ``(N, *output_shape)``.
    """

    def __init__(self, image_shape: Sequence[int], flatten: bool = False, unit_norm: bool = False,
                 pca: Optional[PCAProjection] = None) -> None:
        self.image_shape, self.flatten, self.unit_norm, self.pca = tuple(image_shape), flatten, unit_norm, pca

    @property
    def identity(self) -> bool:
        return not (self.flatten or self.unit_norm or self.pca is not None)

    def output_shape(self, pca_dim: Optional[int] = None) -> tuple[int, ...]:
        k = self.pca.components.shape[0] if self.pca is not None else pca_dim
        if k is not None:
            return (k,)
        return (int(np.prod(self.image_shape)),) if self.flatten else self.image_shape

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.unit_norm:
            x = unit_norm(x)
        if self.pca is not None:
            return self.pca(x)
        return x.flatten(1) if self.flatten else x

    def to(self, device: torch.device | str) -> "FeatureMap":
        return FeatureMap(self.image_shape, self.flatten, self.unit_norm,
                          None if self.pca is None else self.pca.to(device))


def random_crop_flip(x: torch.Tensor, padding: int = 4, flip: bool = True,
                     generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Per-sample random crop of the zero-padded batch, then horizontal flip with probability 1/2.

    The batch-wise equivalent of ``RandomCrop(size, padding=padding)`` followed by
    ``RandomHorizontalFlip()`` (Zhang et al. 2021 App. H.2: "padded with 4 pixels of zeros on all
    sides, then randomly flipped (horizontally) and cropped"): every image gets its own offsets and
    flip, all read by one ``gather`` from the flattened padded images (a flip is a reversed column
    order), on whatever device ``x`` lives.
    """
    n, c, h, w = x.shape
    dev = x.device
    padded = F.pad(x, (padding, padding, padding, padding))
    oy = torch.randint(0, 2 * padding + 1, (n, 1), device=dev, generator=generator)
    ox = torch.randint(0, 2 * padding + 1, (n, 1), device=dev, generator=generator)
    rows = oy + torch.arange(h, device=dev)
    cols = ox + torch.arange(w, device=dev)
    if flip:
        flipped = torch.rand(n, 1, device=dev, generator=generator) < 0.5
        cols = torch.where(flipped, cols.flip(1), cols)
    # one gather is about 5x faster than the equivalent 4-way advanced indexing on CPU
    where = (rows[:, :, None] * (w + 2 * padding) + cols[:, None, :]).view(n, 1, h * w).expand(n, c, h * w)
    return padded.flatten(2).gather(2, where).view(n, c, h, w)
