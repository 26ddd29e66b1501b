"""Cost of the Kronecker certificate sigma_min([x_i (x) x_i]) (Ge et al. 2019 Lemma 1): the Gram route
of lit_memo.diagnostics (an n x n matrix (x_i . x_j)^2) against forming the d^2 x n Kronecker matrix.

Each route runs in a fresh process (peak RSS is the process's own), both in float64, both ending
with the same eigendecomposition of the n x n Gram matrix; the answers are compared. Usage:
    python benchmarks/bench_theory.py [--n 10000] [--d 100]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch


def route(name: str, n: int, d: int) -> dict:
    from lit_memo.diagnostics.theory import kron_gram  # imported before the clock and the memory baseline

    x = torch.nn.functional.normalize(torch.randn(n, d, generator=torch.Generator().manual_seed(0),
                                                  dtype=torch.float64), dim=1)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    if name == "gram":
        gram = kron_gram(x)
    else:  # the Kronecker matrix, column i = x_i (x) x_i, then its Gram matrix
        kron = (x[:, :, None] * x[:, None, :]).reshape(n, d * d).t()
        gram = kron.t() @ kron
        del kron
    t_gram = time.perf_counter() - t0
    eig = torch.linalg.eigvalsh(gram)
    total = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"route": name, "gram_s": t_gram, "total_s": total, "peak_extra_mib": (peak - base) / 1024,
            "sigma_min": eig[0].clamp_min(0).sqrt().item(), "sigma_max": eig[-1].sqrt().item()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--d", type=int, default=100)
    ap.add_argument("--route", choices=["gram", "kron"], help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.route:
        print(json.dumps(route(a.route, a.n, a.d)))
        return
    results = {}
    for name in ("gram", "kron"):
        out = subprocess.run([sys.executable, __file__, "--route", name, "--n", str(a.n), "--d", str(a.d)],
                             check=True, capture_output=True, text=True).stdout
        results[name] = json.loads(out.strip().splitlines()[-1])
    print(f"n={a.n} d={a.d} (d^2 x n Kronecker matrix: {a.d * a.d * a.n * 8 / 2**20:.0f} MiB in float64) "
          f"threads={torch.get_num_threads()}")
    for r in results.values():
        print(f"{r['route']:5s}: Gram matrix {r['gram_s']:7.2f} s, with eigvalsh {r['total_s']:7.2f} s, "
              f"peak extra memory {r['peak_extra_mib']:7.0f} MiB, sigma_max {r['sigma_max']:.6g}")
    g, k = results["gram"], results["kron"]
    print(f"ratio kron / gram: Gram matrix time {k['gram_s'] / g['gram_s']:.1f}x, total time "
          f"{k['total_s'] / g['total_s']:.2f}x, peak memory {k['peak_extra_mib'] / max(g['peak_extra_mib'], 1):.2f}x")
    print(f"sigma_max agree to {abs(g['sigma_max'] - k['sigma_max']) / k['sigma_max']:.1e} (relative); sigma_min "
          f"{g['sigma_min']:.3g} vs {k['sigma_min']:.3g} (n > d(d+1)/2 = {a.d * (a.d + 1) // 2}: both are rounding "
          "noise around the exact 0)" if a.n > a.d * (a.d + 1) // 2 else
          f"sigma_min {g['sigma_min']:.6g} vs {k['sigma_min']:.6g}")


if __name__ == "__main__":
    main()
