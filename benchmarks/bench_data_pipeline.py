"""Images per second: the in-memory tensor pipeline vs the torchvision PIL DataLoader, CIFAR-10 + augmentation.

Both are ``CIFAR10DataModule`` with the paper's augmentation (zero-pad 4, random crop, flip;
Zhang et al. 2021 App. H.2) and mean/std normalisation, iterated for the same number of training
batches in the same process:

- ``tensor``: the 50,000 PNGs decoded once into a uint8 tensor (or loaded from the decoded-image
  cache), crops and flips drawn per batch on tensors, in the main process;
- ``torchvision``: ``ImageFolder`` + ``RandomCrop``/``RandomHorizontalFlip``/``ToTensor``/``Normalize``
  per image in PIL, with ``--workers`` DataLoader processes.

    LIT_MEMO_DATA=../shared/data python benchmarks/bench_data_pipeline.py [--batches 200] [--workers 2]

The published CIFAR-10 statistics are passed as ``mean``/``std`` so neither pipeline spends its
set-up on a statistics pass; set-up times (decode, or cache load) are printed separately.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import torch

from lit_memo.data import CIFAR10DataModule

MEAN, STD = [0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616]  # the published CIFAR-10 values


def throughput(dm: CIFAR10DataModule, batches: int, warmup: int = 5) -> float:
    """Images per second over ``batches`` training batches, after ``warmup`` (worker start-up excluded)."""
    loader = dm.train_dataloader()
    it = iter(loader)
    for _ in range(warmup):
        next(it)
    seen, start = 0, time.perf_counter()
    for _ in range(batches):
        try:
            x, _ = next(it)
        except StopIteration:  # a new epoch (new shuffle) when more batches than one epoch are asked for
            it = iter(loader)
            x, _ = next(it)
        seen += len(x)
    return seen / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=os.environ.get("LIT_MEMO_DATA", "data"))
    parser.add_argument("--batches", type=int, default=200, help="training batches timed per pipeline")
    parser.add_argument("--batch-size", type=int, default=128, help="the paper's CIFAR batch size")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader processes of the torchvision pipeline")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads of the main process (default: torch's); on a shared machine 1 avoids "
                             "OpenMP threads waiting on each other for a busy core")
    parser.add_argument("--cache-dir", default=None, help="decoded-image cache (default: a fresh temporary folder, "
                                                          "so the first set-up includes decoding)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cores; "
          f"batch {args.batch_size}, {args.batches} batches per pipeline")

    common = dict(data_dir=args.data_dir, augment=True, normalize=True, mean=MEAN, std=STD,
                  batch_size=args.batch_size, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        cache_dir = args.cache_dir or tmp
        results = {}
        for name, kwargs in (
            ("tensor (cold: decode + write cache)", dict(pipeline="tensor", cache_dir=cache_dir)),
            ("tensor (warm: cache load)", dict(pipeline="tensor", cache_dir=cache_dir)),
            (f"torchvision PIL, {args.workers} workers", dict(pipeline="torchvision", num_workers=args.workers)),
        ):
            dm = CIFAR10DataModule(**common, **kwargs)
            start = time.perf_counter()
            dm.setup("fit")
            setup_s = time.perf_counter() - start
            rate = throughput(dm, args.batches)
            results[name] = rate
            print(f"{name:40s} setup {setup_s:6.1f} s   {rate:9.0f} images/s")
    tensor = results["tensor (warm: cache load)"]
    pil = results[f"torchvision PIL, {args.workers} workers"]
    print(f"ratio tensor / torchvision: {tensor / pil:.1f}x")


if __name__ == "__main__":
    main()
