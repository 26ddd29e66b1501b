"""The options every real-data DataModule shares, and the two ways of feeding the images.

:class:`ImageDataModule` holds what DESIGN.md ("Data") promises for all datasets: where the data
is, the training subset to memorize, random or noisy labels, targets as class indices or floats,
and the input transforms of Ge et al. (2019) App. C (unit-norm rows, Gaussian perturbation,
PCA fitted on the training subset). A dataset subclass only says how to find, download and read
its splits.

Two pipelines yield the same samples (with augmentation off: exactly the same tensors):

- ``tensor``: each split is decoded once into a tensor kept in memory (moved to the GPU when the
  trainer trains there); with augmentation off the whole input preparation is done once, with it
  on the crops and flips are drawn per batch on tensors (:func:`random_crop_flip`).
- ``torchvision``: the plain per-image pipeline, a torchvision dataset with PIL transforms and
  DataLoader workers. The only choice for datasets too large for memory (R-ImageNet).
"""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence

import torch
from pytorch_lightning.strategies.launchers import _MultiProcessingLauncher
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as T

from lit_memo.data.base import MemoDataModule, tensor_digest
from lit_memo.data.folder import default_cache_dir
from lit_memo.data.sampling import check_eval_splits, eval_sampler
from lit_memo.data.transforms import (
    FeatureMap,
    PCAProjection,
    channel_stats,
    make_generator,
    noisy_labels,
    perturbation,
    random_labels,
    seeded_permutation,
)

DATA_ENV = "LIT_MEMO_DATA"
PIPELINES = ("tensor", "torchvision")
TARGETS = ("index", "float")
CHUNK = 4096  # images per chunk when preparing a whole split at once: bounds the peak memory


def to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 pixels to [0, 1] exactly as ``ToTensor`` does; float images are already in [0, 1]."""
    return x.to(torch.get_default_dtype()).div(255) if x.dtype == torch.uint8 else x


class InputTransform:
    """Pixels in [0, 1] -> the model's input: normalisation, then :class:`FeatureMap`."""

    def __init__(self, normalize: Optional[T.Normalize], features: FeatureMap) -> None:
        self.normalize, self.features = normalize, features

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = to_float(x)
        if self.normalize is not None:
            x = self.normalize(x)
        return self.features(x)

    def to(self, device: torch.device) -> "InputTransform":
        return InputTransform(self.normalize, self.features.to(device))


def _in_chunks(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    if len(x) == 0:
        return fn(x)
    return torch.cat([fn(x[i:i + CHUNK]) for i in range(0, len(x), CHUNK)])


class TensorSplit(Dataset):
    """One split held in memory; a batch of indices is served by one tensor indexing op.

    Without ``augment`` the model inputs are computed once here; with it the stored images are
    cropped/flipped per batch, then transformed. ``__getitems__`` is what the DataLoader calls
    with a whole batch of indices (so its ``collate_fn`` passes the batch through unchanged).
    """

    def __init__(self, images: torch.Tensor, targets: torch.Tensor, transform: InputTransform,
                 noise: Optional[torch.Tensor] = None,
                 augment: Optional[Callable[[torch.Tensor], torch.Tensor]] = None) -> None:
        self.targets, self.transform, self.augment = targets, transform, augment
        if augment is None:
            data = _in_chunks(transform, images)
            self.images, self.noise = (data if noise is None else data + noise), None
        else:
            self.images, self.noise = images, noise

    @property
    def device(self) -> torch.device:
        return self.images.device

    def to(self, device: torch.device) -> "TensorSplit":
        for name in ("images", "targets", "noise"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, value.to(device))
        self.transform = self.transform.to(device)
        return self

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int):
        x, y = self.__getitems__([i])
        return x[0], y[0]

    def __getitems__(self, indices: Sequence[int]):
        idx = torch.as_tensor(indices, device=self.device)
        if self.augment is None:
            return self.images[idx], self.targets[idx]
        x = self.transform(self.augment(self.images[idx]))
        if self.noise is not None:
            x = x + self.noise[idx]
        return x, self.targets[idx]


def pass_batch(batch):
    """``collate_fn`` for :class:`TensorSplit`: the batch is already stacked."""
    return batch


class IndexedSplit(Dataset):
    """Samples ``indices`` of a torchvision dataset, with our targets, per-image transforms and noise."""

    def __init__(self, base: Dataset, indices: torch.Tensor, targets: torch.Tensor, image_transform: Callable,
                 features: Optional[FeatureMap] = None, noise: Optional[tuple[float, int, str]] = None) -> None:
        self.base, self.indices, self.targets = base, indices, targets
        self.image_transform, self.features, self.noise = image_transform, features, noise

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        j = int(self.indices[i])
        x = self.image_transform(self.base[j][0])
        if self.features is not None and not self.features.identity:
            x = self.features(x[None])[0]
        if self.noise is not None:
            std, seed, split = self.noise
            x = x + perturbation([j], x.shape, std, seed, split)[0]
        return x, self.targets[i]


def starts_ranks_by_multiprocessing(trainer: Any) -> bool:
    """Whether this process will start the trainer's ranks by multiprocessing (``ddp_spawn``,
    ``ddp_fork``, ``ddp_notebook``) and is none of them yet (no process group).

    train.py's pre-flight sets the data up in that parent: moved to the GPU there, CUDA would be
    initialised before the fork (Lightning then refuses to start the ranks) and every rank would
    inherit copies on ``cuda:0``. The parent keeps them on the CPU; each rank's ``setup`` moves them.
    """
    launcher = getattr(trainer.strategy, "launcher", None)
    in_a_rank = torch.distributed.is_available() and torch.distributed.is_initialized()
    return isinstance(launcher, _MultiProcessingLauncher) and not in_a_rank


class ImageDataModule(MemoDataModule):
    """A real dataset with the options every memorization experiment shares (DESIGN.md, "Data").

    Subclasses set ``dataset_name``, ``image_shape`` ``(C, H, W)``, ``num_classes`` and
    ``pipelines``, and implement ``_locate`` (find the splits or raise :class:`FileNotFoundError`
    saying where it looked and how to get the data), ``_download``, ``_split_targets``,
    ``_split_images`` (tensor pipeline) and ``_split_dataset`` (torchvision pipeline).

    Args:
        data_dir: the folder holding the dataset (as torchvision's ``root``); default
            ``$LIT_MEMO_DATA``, else ``./data``.
        download: fetch the dataset with torchvision when it is not in ``data_dir``.
        batch_size: samples per step; ``null`` for full-batch gradient descent.
        num_workers: DataLoader worker processes (and image decoding processes).
        pipeline: ``tensor`` (decoded once, in memory, batch-wise augmentation) or
            ``torchvision`` (per-image PIL transforms).
        subset_size: train on the first n samples of a permutation seeded by ``seed`` (null: all).
        val_size: hold out the last ``val_size`` samples of that permutation as a validation split
            with true labels (0: no validation).
        random_labels: replace every training label by a uniform draw from the classes (Zhang et
            al. 2021 Table 3; Ge et al. 2019 Fig. 9-10). Validation and test keep true labels.
        label_noise: replace this fraction of the training labels by a different class.
        targets: ``index`` (class indices, cross-entropy) or ``float`` (the class index as a float
            target for squared loss: Ge et al. regress the digit value; ``num_outputs`` is then 1).
        flatten: inputs as vectors instead of ``(C, H, W)`` images.
        normalize: subtract the per-channel mean and divide by the per-channel std of the pixels
            of the training subset (Zhang et al. App. H.2), or of ``mean``/``std`` when given.
        unit_norm: scale every sample to Euclidean norm 1 (Ge et al. App. C).
        noise_std: add ``N(0, noise_std^2)`` per coordinate, drawn once per sample from ``seed``
            and fixed for the whole run (Ge et al. Fig. 7: 0.01; Fig. 8: 0.05 after PCA).
        pca_dim: project onto the top ``pca_dim`` principal directions of the training subset
            (fitted on it alone, applied to every split; Ge et al. Fig. 8: 100). Implies flat inputs.
        seed: draws the subset, the random/noisy labels and the perturbation; independent of
            ``seed_everything``, so the data stay fixed while the training seed varies.
        cache: keep decoded image folders in ``cache_dir`` (tensor pipeline).
        cache_dir: default ``$LIT_MEMO_CACHE``, else ``~/.cache/lit_memo``.

    Order of the input transforms: pixels in [0, 1] -> normalize -> unit_norm -> PCA -> flatten
    -> + perturbation (the order of Ge et al. App. C).
    """

    dataset_name: str = "dataset"
    image_shape: tuple[int, int, int]
    num_classes: int
    pipelines: tuple[str, ...] = PIPELINES
    split_names: tuple[str, str] = ("train", "test")  # (training split, test split) as on disk
    stats_images: Optional[int] = None  # normalisation statistics from at most this many images (None: all)

    def __init__(
        self,
        data_dir: Optional[str] = None,
        download: bool = False,
        batch_size: Optional[int] = 128,
        num_workers: int = 0,
        pipeline: str = "tensor",
        subset_size: Optional[int] = None,
        val_size: int = 0,
        random_labels: bool = False,
        label_noise: float = 0.0,
        targets: str = "index",
        flatten: bool = False,
        normalize: bool = False,
        mean: Optional[list[float]] = None,
        std: Optional[list[float]] = None,
        unit_norm: bool = False,
        noise_std: float = 0.0,
        pca_dim: Optional[int] = None,
        seed: int = 0,
        cache: bool = True,
        cache_dir: Optional[str] = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self._check_options()
        self.data_dir = Path(data_dir or os.environ.get(DATA_ENV) or "data").expanduser().absolute()
        self.cache_dir = (Path(cache_dir) if cache_dir else default_cache_dir()) if cache else None
        self.features = FeatureMap(self.image_shape, flatten, unit_norm)
        self.input_shape = self.features.output_shape(pca_dim)
        self.num_outputs = 1 if targets == "float" else self.num_classes
        self.task = "regression" if targets == "float" else "classification"
        self.augment = False  # subclasses with the papers' augmentation switch it on
        self.splits: dict[str, Dataset] = {}
        # filled by setup: the training subset (indices into the training split), its true and its
        # training labels, and what was fitted on it
        self.train_indices = self.true_targets = self.train_targets = None
        self.mean = self.std = None
        self.pca: Optional[PCAProjection] = None
        self._pixels_digest: Optional[str] = None  # the training subset's pixels as read (tensor pipeline)

    # -- validation ------------------------------------------------------------------------
    def _fail(self, field: str, message: str) -> ValueError:
        return ValueError(f"data.init_args.{field}={self.hparams[field]!r} {message}")

    def _check_options(self) -> None:
        hp = self.hparams
        if hp.batch_size is not None and hp.batch_size < 1:
            raise self._fail("batch_size", "must be >= 1 (or null for full-batch gradient descent)")
        if hp.num_workers < 0:
            raise self._fail("num_workers", "must be >= 0")
        if hp.pipeline not in self.pipelines:
            raise self._fail("pipeline", f"is not available for {self.dataset_name}; choose one of {self.pipelines}")
        if hp.subset_size is not None and hp.subset_size < 1:
            raise self._fail("subset_size", "must be >= 1 (or null for the whole training set)")
        if hp.val_size < 0:
            raise self._fail("val_size", "must be >= 0")
        if not 0.0 <= hp.label_noise <= 1.0:
            raise self._fail("label_noise", "must be a fraction in [0, 1]")
        if hp.random_labels and hp.label_noise > 0:
            raise self._fail("label_noise", "cannot be combined with random_labels=true "
                                            "(all labels are random already)")
        if hp.targets not in TARGETS:
            raise self._fail("targets", f"must be one of {TARGETS}")
        if not hp.noise_std >= 0:
            raise self._fail("noise_std", "must be >= 0")
        dim = math.prod(self.image_shape)
        if hp.pca_dim is not None and not 1 <= hp.pca_dim <= dim:
            raise self._fail("pca_dim", f"must be between 1 and the input dimension {dim}")
        channels = self.image_shape[0]
        for field in ("mean", "std"):
            value = hp[field]
            if value is not None and len(value) != channels:
                raise self._fail(field, f"must list one value per channel ({channels})")
        if (hp.mean is None) != (hp.std is None):
            raise self._fail("mean" if hp.std is None else "std",
                             "needs its partner: give both mean and std, or neither")
        if hp.std is not None and min(hp.std) <= 0:
            raise self._fail("std", "must be > 0")
        if hp.mean is not None and not hp.normalize:
            raise self._fail("mean", "is only used with normalize=true")

    # -- what a dataset subclass provides ---------------------------------------------------
    def _locate(self) -> None:
        """Find the splits on disk (or in memory) or raise FileNotFoundError (where, and how to get them)."""
        raise NotImplementedError

    def _download(self) -> None:
        raise NotImplementedError(f"{self.dataset_name} cannot be downloaded by torchvision")

    def _has_split(self, split: str) -> bool:
        return True

    def _split_targets(self, split: str) -> torch.Tensor:
        """The true class index of every sample of ``split`` (without decoding images)."""
        raise NotImplementedError

    def _split_images(self, split: str, indices: torch.Tensor) -> torch.Tensor:
        """Images ``indices`` of ``split`` as ``(N, C, H, W)``: uint8, or float in [0, 1]."""
        raise NotImplementedError

    def _split_dataset(self, split: str) -> Dataset:
        """A torchvision dataset of ``split`` whose items are ``(PIL image, target)``."""
        raise NotImplementedError

    def _pil_transforms(self, train: bool) -> list:
        """Geometric PIL transforms before ``ToTensor`` (augmentation when ``train``)."""
        return []

    def _augment_batch(self, x: torch.Tensor) -> torch.Tensor:
        """The tensor pipeline's batch-wise equivalent of ``_pil_transforms(train=True)``."""
        return x

    # -- Lightning hooks -------------------------------------------------------------------
    def prepare_data(self) -> None:
        """Download once per node when allowed; otherwise fail here, before training, if data is missing."""
        if self.hparams.download:
            try:
                self._locate()
            except FileNotFoundError:
                self._download()
        self._locate()

    def setup(self, stage: Optional[str] = None) -> None:
        if self.splits:
            if self.trainer is not None:
                self._place_splits()
            return
        self._locate()
        hp = self.hparams
        train_split, test_split = self.split_names
        all_targets = self._split_targets(train_split)
        n = len(all_targets)
        if hp.val_size >= n:
            raise self._fail("val_size", f"leaves no training images out of the {n} in the training split")
        available = n - hp.val_size
        if hp.subset_size is not None and hp.subset_size > available:
            what = (f"the {n} training images" if hp.val_size == 0
                    else f"the {available} training images left after val_size")
            raise self._fail("subset_size", f"exceeds {what}")
        perm = seeded_permutation(n, hp.seed)
        train_idx = perm[: hp.subset_size or available]
        self.train_indices = train_idx
        self.true_targets = all_targets[train_idx]
        self.train_targets = self._train_labels(self.true_targets)
        parts = {"train": (train_split, train_idx, self.train_targets)}
        if hp.val_size:
            val_idx = perm[available:]
            parts["val"] = (train_split, val_idx, all_targets[val_idx])
        if self._has_split(test_split):
            test_targets = self._split_targets(test_split)
            parts["test"] = (test_split, torch.arange(len(test_targets)), test_targets)
        if hp.targets == "float":
            parts = {k: (s, i, t.float()) for k, (s, i, t) in parts.items()}
        if hp.pipeline == "tensor":
            self._build_tensor_splits(parts)
        else:
            self._build_indexed_splits(parts)
        self.check_training_set()  # a checkpoint loaded before setup is checked here
        check_eval_splits(self.splits, self.trainer)  # too few samples for the ranks: refused now, not after fit

    def _train_labels(self, true: torch.Tensor) -> torch.Tensor:
        hp = self.hparams
        if hp.random_labels:
            return random_labels(len(true), self.num_classes, hp.seed)
        if hp.label_noise > 0:
            return noisy_labels(true, hp.label_noise, self.num_classes, hp.seed)
        return true

    # -- building the splits ---------------------------------------------------------------
    def _stat_positions(self, n: int) -> torch.Tensor:
        """Positions in the training subset the normalisation statistics are computed on."""
        if self.stats_images is None or n <= self.stats_images:
            return torch.arange(n)
        return torch.randperm(n, generator=make_generator(self.hparams.seed, "stats"))[: self.stats_images]

    def _fit_inputs(self, pixel_batches: Callable[[torch.Tensor], Iterator[torch.Tensor]],
                    n_train: int) -> InputTransform:
        """Normalisation statistics and PCA, from the un-augmented training subset only.

        ``pixel_batches(positions)`` yields the training images at those positions of the subset
        as float pixels in [0, 1], in batches.
        """
        hp = self.hparams
        normalize = None
        if hp.normalize:
            if hp.mean is not None:
                mean, std = torch.tensor(hp.mean), torch.tensor(hp.std)
            else:
                mean, std = channel_stats(pixel_batches(self._stat_positions(n_train)))
            self.mean, self.std = mean.float(), std.float()
            normalize = T.Normalize(self.mean.tolist(), self.std.tolist())
        features = self.features
        if hp.pca_dim is not None:
            if hp.pca_dim > n_train:
                raise self._fail("pca_dim", f"exceeds the {n_train} training samples PCA is fitted on")
            pre = InputTransform(normalize, features)
            x = torch.cat([pre(b) for b in pixel_batches(torch.arange(n_train))])
            pca = PCAProjection.fit(x, hp.pca_dim)
            features = FeatureMap(features.image_shape, features.flatten, features.unit_norm, pca)
        self.pca = features.pca
        return InputTransform(normalize, features)

    def _noise(self, split: str, indices: torch.Tensor) -> Optional[torch.Tensor]:
        hp = self.hparams
        if hp.noise_std == 0:
            return None
        return perturbation(indices, self.input_shape, hp.noise_std, hp.seed, split)

    def _build_tensor_splits(self, parts: dict) -> None:
        raw = {name: self._split_images(split, idx) for name, (split, idx, _) in parts.items()}
        train = raw["train"]
        self._pixels_digest = tensor_digest(train)  # decoded file contents: the same bits on any machine

        def pixel_batches(positions: torch.Tensor) -> Iterator[torch.Tensor]:
            return (to_float(train[positions[i:i + CHUNK]]) for i in range(0, len(positions), CHUNK))

        transform = self._fit_inputs(pixel_batches, len(train))
        for name, (split, idx, targets) in parts.items():
            augment = self._augment_batch if (name == "train" and self.augment) else None
            self.splits[name] = TensorSplit(raw[name], targets, transform, self._noise(split, idx), augment)
        self._place_splits()

    def _build_indexed_splits(self, parts: dict) -> None:
        hp = self.hparams
        bases = {split: self._split_dataset(split) for split, _, _ in parts.values()}
        train_split, train_idx, _ = parts["train"]
        eval_pixels = T.Compose(self._pil_transforms(False) + [T.ToTensor()])

        def pixel_batches(positions: torch.Tensor) -> Iterator[torch.Tensor]:
            idx = train_idx[positions]
            ds = IndexedSplit(bases[train_split], idx, torch.zeros(len(idx)), eval_pixels)
            return (x for x, _ in DataLoader(ds, batch_size=256, num_workers=hp.num_workers))

        transform = self._fit_inputs(pixel_batches, len(train_idx))
        to_input = [T.ToTensor()] + ([transform.normalize] if transform.normalize is not None else [])
        for name, (split, idx, targets) in parts.items():
            pil = T.Compose(self._pil_transforms(name == "train" and self.augment) + to_input)
            noise = (hp.noise_std, hp.seed, split) if hp.noise_std > 0 else None
            self.splits[name] = IndexedSplit(bases[split], idx, targets, pil, transform.features, noise)

    def _device(self) -> torch.device:
        """Where the tensor pipeline keeps the splits: the trainer's device, except in a process
        that will start the ranks itself (see :func:`starts_ranks_by_multiprocessing`)."""
        trainer = self.trainer
        if trainer is None or starts_ranks_by_multiprocessing(trainer):
            return torch.device("cpu")
        return trainer.strategy.root_device

    def _place_splits(self) -> None:
        """Move the in-memory splits to ``_device()``: once built, and again when a rank set up
        from a parent's CPU copy (fork, spawn) calls ``setup``."""
        device = self._device()
        for ds in self.splits.values():
            if isinstance(ds, TensorSplit) and ds.device != device:
                ds.to(device)

    # -- loaders ---------------------------------------------------------------------------
    def _loader(self, name: str, shuffle: bool):
        ds = self.splits.get(name)
        if ds is None:
            return []
        in_memory = isinstance(ds, TensorSplit)
        on_device = in_memory and ds.device.type != "cpu"
        workers = 0 if on_device else self.hparams.num_workers
        return DataLoader(
            ds,
            batch_size=self.hparams.batch_size or len(ds),
            shuffle=shuffle,
            sampler=None if shuffle else eval_sampler(ds, self.trainer, name),  # under DDP: no padding
            num_workers=workers,
            collate_fn=pass_batch if in_memory else None,
            pin_memory=not on_device and self._device().type == "cuda",
            persistent_workers=workers > 0,
        )

    def train_dataloader(self):
        # a full batch needs no shuffling; under DDP each rank then gets an unpadded shard, and the
        # module weights each rank's loss by its shard size: exact full-batch GD for any world size
        return self._loader("train", shuffle=self.hparams.batch_size is not None)

    def val_dataloader(self):
        return self._loader("val", shuffle=False)

    def test_dataloader(self):
        return self._loader("test", shuffle=False)

    @property
    def has_test(self) -> bool:
        return self._has_split(self.split_names[1])

    # -- the training set is part of the run: checked on resume (MemoDataModule) -------------
    format1_parts = ("subset", "targets")

    def training_set_fingerprint(self) -> dict[str, Any]:
        """The subset (indices), its training labels, and the inputs: exactly, what determines
        them (the input options and seed, and with the tensor pipeline the pixels of the whole
        subset as read from the files); up to rounding, the statistics fitted on them
        (normalisation, PCA variances), whose last bits depend on the machine's BLAS. Another
        seed, subset, label option or input option is told apart, and so are changed files on disk
        with the tensor pipeline (its pixels are digested); with torchvision's pipeline only through
        the fitted statistics, up to 1e-4, so a few changed images among thousands can pass. A resume
        on another machine is not refused for rounding."""
        if "train" not in self.splits:
            return {}
        hp = self.hparams
        options = {k: hp[k] for k in ("flatten", "normalize", "mean", "std", "unit_norm", "noise_std", "pca_dim", "seed")}
        inputs = hashlib.sha256(f"{self.dataset_name} {options} augment={self.augment} "
                                f"stats_images={self.stats_images} pixels={self._pixels_digest}".encode())
        targets = self.train_targets.float() if hp.targets == "float" else self.train_targets
        record: dict[str, Any] = {"subset": tensor_digest(self.train_indices), "targets": tensor_digest(targets),
                                  "inputs": inputs.hexdigest()[:16]}
        if self.mean is not None:
            record["normalisation statistics"] = self.mean.tolist() + self.std.tolist()
        if self.pca is not None:
            record["PCA variances"] = self.pca.explained_variance_ratio.tolist()  # sign/rotation-free, unlike components
        return record
