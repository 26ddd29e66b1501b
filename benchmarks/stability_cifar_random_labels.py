"""Why cifar10_random_labels.yaml diverged at SGD lr 0.1 momentum 0.9, on a CIFAR-10 subset (issue 8).

    LIT_MEMO_DATA=../shared/data python benchmarks/stability_cifar_random_labels.py [--subset 2048] [--steps 160]

The config's network (Zhang et al. 2021 Table 3: one hidden ReLU layer of width 1024, regime
``ours``, mirrored LeCun init, pairwise output, cross-entropy) on random-label CIFAR-10 with the
paper's global mean/std normalisation, mini-batches of 128. Prints the loss Hessian's largest
eigenvalue at init (on one batch, by Lanczos: ``lit_memo.diagnostics``) next to the largest step
that heavy-ball SGD tolerates on a quadratic of that curvature, ``lr < 2 (1 + beta) / lambda_max``,
then trains each variant for a few epochs of the subset and prints its loss curve.
"""

from __future__ import annotations

import argparse
import math
import time

import torch
import torch.nn.functional as F

from lit_memo.data import CIFAR10DataModule
from lit_memo.diagnostics.hessian import hessian_extreme_eigenvalues
from lit_memo.modules import ShallowNetModule

VARIANTS = [  # name, lr, momentum, regime, input scale factor
    ("config: lr 0.1, momentum 0.9", 0.1, 0.9, "ours", 1.0),
    ("regular regime, lr 0.1, momentum 0.9", 0.1, 0.9, "regular", 1.0),
    ("lr 0.1, no momentum", 0.1, 0.0, "ours", 1.0),
    ("lr 0.01, momentum 0.9", 0.01, 0.9, "ours", 1.0),
    ("lr 0.1, momentum 0.9, inputs / sqrt(d) (unit-scale rows)", 0.1, 0.9, "ours", 1 / math.sqrt(3072)),
]


def make_module(regime: str) -> ShallowNetModule:
    kwargs = dict(radius=100.0, zeta=1e-3, gamma=1e3) if regime == "ours" else {}
    return ShallowNetModule(input_shape=(3072,), num_outputs=10, task="classification", regime=regime, width=1024,
                            activation="relu", **kwargs)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--subset", type=int, default=2048)
    p.add_argument("--steps", type=int, default=160)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    dm = CIFAR10DataModule(random_labels=True, flatten=True, normalize=True, subset_size=args.subset, seed=0)
    dm.setup("fit")
    train = dm.splits["train"]
    x_all, y_all = train.images, train.targets
    print(f"{len(y_all)} random-label CIFAR-10 images, mean row norm {x_all.norm(dim=1).mean():.1f} "
          f"(d = {x_all.shape[1]})")
    print("| variant | lambda_max at init | 2(1+beta)/lambda_max | loss at steps 1 / 10 / 40 / 80 / end | max loss | train acc |")
    print("|---|---|---|---|---|---|")
    for name, lr, beta, regime, scale in VARIANTS:
        torch.manual_seed(0)
        module = make_module(regime)
        x = x_all * scale
        lam = hessian_extreme_eigenvalues(module.net, lambda out, y: F.cross_entropy(out, y), (x[:128], y_all[:128]),
                                          num_iter=20)[1]
        optimizer = torch.optim.SGD(module.net.parameters(), lr=lr, momentum=beta)
        module.capture_anchors_()
        gen = torch.Generator().manual_seed(0)
        losses, start = [], time.perf_counter()
        while len(losses) < args.steps:
            for idx in torch.randperm(len(y_all), generator=gen).split(128):
                loss = F.cross_entropy(module.net(x[idx]), y_all[idx])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                module.project_constraints_()
                losses.append(loss.item())
                if len(losses) == args.steps or not math.isfinite(losses[-1]):
                    break
            if not math.isfinite(losses[-1]):
                break
        with torch.no_grad():
            acc = (module.net(x).argmax(1) == y_all).float().mean().item()
        at = [losses[min(s, len(losses)) - 1] for s in (1, 10, 40, 80)] + [losses[-1]]
        print(f"| {name} | {lam:.3g} | {2 * (1 + beta) / lam:.3g} | {' / '.join(f'{v:.3g}' for v in at)} "
              f"| {max(losses):.3g} | {acc:.3f} |  ({time.perf_counter() - start:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
