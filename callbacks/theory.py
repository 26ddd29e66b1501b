"""The theory's certificates for this run, once at train start: Ge et al. (2019) Lemma 1 /
Theorem 4, Zhang et al. (2021) Theorem 1, Daniely (2020) (see lit_memo.diagnostics.theory)."""

from __future__ import annotations

import math
import time
from typing import Optional

import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities import rank_zero_info
from torch import nn

from .base import isolated, log_to_loggers
from .namespaces import Callback
from .probes import first_samples, train_dataset
from lit_memo.diagnostics.theory import condition_metrics, kron_sigma_min, rank_limit, width_conditions


def hidden_width(pl_module: nn.Module) -> Optional[int]:
    """The module's ``hidden_width``, else the output size of its first Linear layer."""
    width = getattr(pl_module, "hidden_width", None)
    if width is not None:
        return int(width)
    first = next((m for m in pl_module.modules() if isinstance(m, nn.Linear)), None)
    return None if first is None else first.out_features


class TheoryCertificateCallback(Callback):
    """Logs, once at train start and on rank 0, whether this run meets each paper's conditions.

    Keys: ``theory/n``, ``theory/d``, ``theory/width``; per condition
    ``theory/<paper>/<name>`` (the run's value), ``..._bound`` and ``..._holds`` (1/0), see
    :func:`lit_memo.diagnostics.width_conditions`; and, for modules with
    ``certificate_features`` (Ge et al.'s quadratic nets: the inputs, or the random features z),
    ``theory/kron_sigma_min``: the smallest singular value of ``[v_i (x) v_i]`` (Lemma 1's sigma)
    from the Gram identity, on the first ``max_samples`` training samples (``theory/kron_samples``;
    fewer than n gives an upper bound: removing columns cannot lower sigma_min). d is the
    dimension of what the trained layer sees. One plain-words line goes to the console.

    Args:
        max_samples: at most this many samples for sigma_min (an n x n float64 eigenproblem).
        kron: compute sigma_min (None: only for modules with ``certificate_features``).
    """

    def __init__(self, max_samples: int = 5000, kron: Optional[bool] = None) -> None:
        if max_samples < 1:
            raise ValueError(f"max_samples must be >= 1, got {max_samples}")
        self.max_samples, self.kron = max_samples, kron
        self.metrics: dict[str, float] = {}
        self.message = ""

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        start = time.perf_counter()
        with isolated(pl_module):
            self.metrics, self.message = self.measure(trainer, pl_module)
        self.metrics["theory/seconds"] = time.perf_counter() - start
        log_to_loggers(trainer, self.metrics, trainer.global_step)
        rank_zero_info(self.message)

    def measure(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> tuple[dict[str, float], str]:
        dataset = train_dataset(trainer)
        if dataset is None:
            raise RuntimeError("TheoryCertificateCallback needs a map-style training dataset to count n")
        n = len(dataset)
        features = getattr(pl_module, "certificate_features", None)
        use_kron = features is not None if self.kron is None else self.kron
        v = None
        if use_kron or features is not None:  # samples only when needed (d of z needs the features)
            x = first_samples(trainer, min(n, self.max_samples), pl_module.device)[0]
            with torch.no_grad():
                v = features(x) if features is not None else x.flatten(1)
            d = v.shape[1]
        else:
            d = math.prod(getattr(pl_module, "input_shape", None) or dataset[0][0].shape)
        width = hidden_width(pl_module)
        if width is None:
            raise RuntimeError(f"TheoryCertificateCallback: cannot tell the hidden width of {type(pl_module).__name__} "
                               "(give it a hidden_width property)")
        conditions = width_conditions(n, d, width)
        metrics = {"theory/n": float(n), "theory/d": float(d), "theory/width": float(width), **condition_metrics(conditions)}
        parts = [f"theory: n={n}, d={d}, width={width}"]
        if use_kron:
            sigma = kron_sigma_min(v)
            metrics["theory/kron_sigma_min"], metrics["theory/kron_samples"] = sigma, float(len(v))
            where = "" if len(v) == n else f" on the first {len(v)} of {n} samples (an upper bound)"
            why = " (n > d(d+1)/2: the columns are dependent)" if len(v) > rank_limit(d) else ""
            parts.append(f"sigma_min[v (x) v] = {sigma:.3g}{where}{why}")
        for c in conditions:
            parts.append(f"{c.paper}: {c.text} {'holds' if c.holds else 'FAILS'}")
        return metrics, "; ".join(parts)
