"""Why Ge et al.'s three-layer PCA run (App. A, Fig. 8) flattens or fits at CPU size.

A plain PyTorch loop (no Lightning: about 10x faster, so a setting takes seconds) on exactly the
training tensors of ``configs/ge_mnist_pca_three_layer.yaml`` (6000 unit-norm digits, PCA 100,
noise 0.05): the same net (:class:`ThreeLayerQuadraticNet`), squared loss, Adam and StepLR, with
the knobs the config's comments discuss. ``--spec`` prints, instead of training, the spectrum of
the Gram matrix ``K_ij = (z_i . z_j)^2`` of ``z_i (x) z_i`` (Lemma 1's certificate is the square
root of its smallest eigenvalue) and ``||M||_F^2`` of the least-norm ``M`` with
``z_i^T M z_i = y_i`` for all i (the fit any width >= 2k can express, ``M = W^T diag(a) W``).

    python reproduction/ge_pca_diagnose.py --features 200 --width 400 --step 15 --epochs 45
    python reproduction/ge_pca_diagnose.py --features 400 --spec
"""

from __future__ import annotations

import argparse
import time

import torch

from lit_memo.data import MNISTDataModule
from lit_memo.diagnostics import kron_gram
from lit_memo.models.quadratic import ThreeLayerQuadraticNet


def training_tensors(n: int, noise: float, random_labels: bool) -> tuple[torch.Tensor, torch.Tensor]:
    dm = MNISTDataModule(subset_size=n, unit_norm=True, pca_dim=100, noise_std=noise, targets="float",
                         random_labels=random_labels, flatten=True, batch_size=n, seed=0)
    dm.prepare_data()
    dm.setup("fit")
    x, y = next(iter(dm.train_dataloader()))
    return x, y.float()


def spectrum(net: ThreeLayerQuadraticNet, x: torch.Tensor, y: torch.Tensor) -> None:
    with torch.no_grad():
        gram = kron_gram(net.features(x))
        ev = torch.linalg.eigvalsh(gram)
        alpha = torch.linalg.solve(gram, y.double())  # M = sum_i alpha_i z_i z_i^T, so ||M||_F^2 = alpha^T K alpha
    print(f"Gram (z_i . z_j)^2: eigenvalues {ev[0]:.3g} .. {ev[-1]:.3g}, median {ev.median():.3g}, "
          f"sigma_min[z (x) z] = {ev[0].sqrt():.3g}; least-norm fit ||M||_F^2 = {alpha @ gram @ alpha:.4g}")


def train(net: ThreeLayerQuadraticNet, x: torch.Tensor, y: torch.Tensor, args: argparse.Namespace) -> None:
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    sched = torch.optim.lr_scheduler.StepLR(opt, args.step, args.gamma)
    order = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        for idx in torch.randperm(len(y), generator=order).split(args.batch_size):
            loss = (net(x[idx]).squeeze(1) - y[idx]).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
        if epoch % max(1, args.epochs // 15) == 0 or epoch in (1, args.epochs):
            with torch.no_grad():
                full = (net(x).squeeze(1) - y).pow(2).mean()
            print(f"epoch {epoch:4d}  lr {opt.param_groups[0]['lr']:.2e}  train MSE (all {len(y)}) {full:.4g}  "
                  f"{time.perf_counter() - start:.0f} s", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=6000)
    p.add_argument("--noise", type=float, default=0.05)
    p.add_argument("--random_labels", action="store_true")
    p.add_argument("--features", type=int, default=400)
    p.add_argument("--width", type=int, default=800)
    p.add_argument("--feature_scale", type=float, default=0.3)
    p.add_argument("--init_std", type=float, default=None, help="std of W's entries (None: 1/sqrt(features))")
    p.add_argument("--lr", type=float, default=0.003)
    p.add_argument("--batch_size", type=int, default=128)
    p.add_argument("--step", type=int, default=30, help="StepLR step_size in epochs")
    p.add_argument("--gamma", type=float, default=0.3)
    p.add_argument("--epochs", type=int, default=90)
    p.add_argument("--spec", action="store_true", help="print the Gram spectrum instead of training")
    args = p.parse_args()
    torch.manual_seed(0)
    x, y = training_tensors(args.n, args.noise, args.random_labels)
    net = ThreeLayerQuadraticNet(x.shape[1], args.features, args.width, 2, args.feature_scale, feature_seed=0,
                                 init_std=args.init_std)
    if args.spec:
        spectrum(net, x, y)
    else:
        train(net, x, y, args)


if __name__ == "__main__":
    main()
