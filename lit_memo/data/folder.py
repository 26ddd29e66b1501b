"""Image folders (``<split>/<class>/*.png``) decoded once into a uint8 tensor, with a file cache.

Decoding the 60,000 CIFAR-10 PNGs takes about 10 s on one core (about 160 us each with
``torchvision.io.decode_png``, no faster from threads); loading the decoded tensor back from a
``.pt`` file takes a fraction of a second. The cache lives under a cache folder of its own (never
next to the data, which may be read-only or shared), is keyed on the folder's file list, sizes and
modification times, and is written atomically, so concurrent DDP ranks or runs cannot read a
half-written file.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path
from typing import Optional, Sequence

import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.datasets import ImageFolder
from torchvision.io import ImageReadMode, decode_image, read_file

CACHE_ENV = "LIT_MEMO_CACHE"
CACHE_FORMAT = 1  # bump when the cached content changes meaning


def default_cache_dir() -> Path:
    """``$LIT_MEMO_CACHE``, else ``$XDG_CACHE_HOME/lit_memo``, else ``~/.cache/lit_memo``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lit_memo"


class _Decoder(Dataset):
    def __init__(self, paths: Sequence[str], shape: tuple[int, int, int]) -> None:
        self.paths, self.shape = list(paths), shape
        self.mode = ImageReadMode.RGB if shape[0] == 3 else ImageReadMode.GRAY

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        img = decode_image(read_file(self.paths[i]), mode=self.mode)
        if tuple(img.shape) != self.shape:
            raise ValueError(f"{self.paths[i]}: image of shape {tuple(img.shape)}, expected {self.shape}")
        return img


def decode_files(paths: Sequence[str], shape: tuple[int, int, int], num_workers: int = 0) -> torch.Tensor:
    """Decode ``paths`` into one ``(N, C, H, W)`` uint8 tensor, with ``num_workers`` processes."""
    if not paths:
        return torch.empty(0, *shape, dtype=torch.uint8)
    loader = DataLoader(_Decoder(paths, shape), batch_size=512, num_workers=num_workers, collate_fn=torch.stack)
    return torch.cat(list(loader))


def folder_key(folder: ImageFolder) -> str:
    """Digest of what the decoded tensor depends on: the files, their sizes and modification times."""
    h = hashlib.sha256(f"{CACHE_FORMAT}\n{Path(folder.root).resolve()}\n{folder.classes}\n".encode())
    skip = len(os.path.join(folder.root, ""))  # samples are root-joined paths: hash them relative to root
    for path, target in folder.samples:
        st = os.stat(path)
        h.update(f"{path[skip:]}\t{target}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def load_folder_images(folder: ImageFolder, shape: tuple[int, int, int], indices: Optional[torch.Tensor] = None,
                       cache_dir: Optional[Path] = None, num_workers: int = 0) -> torch.Tensor:
    """The images ``indices`` (default: all) of ``folder``, in ``folder.samples`` order, as uint8.

    With a ``cache_dir``, a run that needs more than half of the folder decodes all of it once
    and caches it; a run on a small subset decodes just those files (a cache written by an
    earlier run is still used).
    """
    n = len(folder.samples)
    wanted = torch.arange(n) if indices is None else indices
    cache = None
    if cache_dir is not None:
        tag = "-".join(Path(folder.root).resolve().parts[-2:])
        cache = Path(cache_dir) / f"{tag}-{folder_key(folder)[:20]}.pt"
        if cache.is_file():
            images = torch.load(cache, weights_only=True)
            return images if indices is None else images[indices]
    if cache is None or 2 * len(wanted) <= n:
        return decode_files([folder.samples[i][0] for i in wanted.tolist()], shape, num_workers)
    images = decode_files([p for p, _ in folder.samples], shape, num_workers)
    _save_atomic(images, cache)
    return images if indices is None else images[indices]


def _save_atomic(tensor: torch.Tensor, path: Path) -> None:
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(tensor, tmp)
        os.replace(tmp, path)
    except OSError as err:  # an unwritable cache only costs the next run a decode
        warnings.warn(f"lit_memo: could not write the decoded-image cache {path}: {err}", stacklevel=2)
        tmp.unlink(missing_ok=True)
