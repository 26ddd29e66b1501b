"""Spectrum of the Jacobian of a network's outputs on a probe set (Zhang et al. 2021 Fig. 4 c-d;
the PL view of the lecture notes, papers/003: sigma_min(J) > 0 means no bad stationary point).

J has one row per (sample, output) and one column per chosen parameter entry. Its singular
values come from the Gram matrix ``J J^T`` (rows x rows, small), accumulated one parameter
tensor at a time in float64, so the whole J of a large model never exists: a block of parameter
tensors whose Jacobian fits in ``max_bytes`` is differentiated per sample with
``vmap(jacrev(.))`` over chunks of samples; a tensor too big on its own is split into column
slices, one pass each.
"""

from __future__ import annotations

import math
from typing import Iterator

import torch
from torch import nn
from torch.func import functional_call, jacrev, vmap

from lit_memo.diagnostics.functional import ParamSpec, eval_mode, split_params

DEFAULT_MAX_BYTES = 256 * 2**20


def jacobian_gram(model: nn.Module, inputs: torch.Tensor, params: ParamSpec = None, *,
                  max_bytes: int = DEFAULT_MAX_BYTES) -> torch.Tensor:
    """``J J^T`` (float64, ``k*C x k*C``, rows ordered sample-major) of the outputs on ``inputs``.

    ``inputs`` is a batch of k samples; the model is evaluated in eval mode, one sample at a time
    (so BatchNorm uses running statistics). Extra memory is a few ``max_bytes`` (a Jacobian
    block, one chunk of per-sample Jacobians, a float64 column slice) plus one chunk's activations.
    """
    if inputs.shape[0] < 1:
        raise ValueError("inputs must hold at least one sample")
    chosen, rest = split_params(model, params)
    with eval_mode(model), torch.enable_grad():
        def one_sample(block: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
            others = {**{n: t for n, t in chosen.items() if n not in block}, **rest}
            return functional_call(model, (block, others), (x.unsqueeze(0),)).reshape(-1)

        k = inputs.shape[0]
        with torch.no_grad():
            num_out = one_sample({}, inputs[0]).numel()
        saved = _saved_bytes_per_sample(one_sample, chosen, inputs[0])
        per_sample_jac = vmap(jacrev(one_sample), in_dims=(None, 0))
        rows = k * num_out
        gram = torch.zeros(rows, rows, dtype=torch.float64, device=inputs.device)
        for names, n_slices in _plan_blocks(chosen, rows, max_bytes):
            block = {n: chosen[n] for n in names}
            width = sum(t.numel() for t in block.values())
            elem = next(iter(block.values())).element_size()
            # per sample: its Jacobian block, and C backward passes through the saved activations
            chunk = max(1, min(k, max_bytes // max(1, num_out * (width * elem + saved))))
            for cols in _column_slices(width, n_slices):
                jac = {n: t.new_empty(rows, len(range(t.numel())[cols])) for n, t in block.items()}
                for start in range(0, k, chunk):
                    part = per_sample_jac(block, inputs[start:start + chunk])
                    for n, j in part.items():
                        j = j.reshape(j.shape[0] * num_out, -1)[:, cols]
                        jac[n][start * num_out:start * num_out + j.shape[0]] = j
                    del part
                for n in names:  # one parameter tensor at a time, products in float64
                    _add_gram_(gram, jac.pop(n), max_bytes)
    return gram


def jacobian_spectrum(model: nn.Module, inputs: torch.Tensor, params: ParamSpec = None, *,
                      max_bytes: int = DEFAULT_MAX_BYTES) -> torch.Tensor:
    """Singular values of J (descending, float64): the ``min(k*C, #params)`` of ``svdvals(J)``."""
    gram = jacobian_gram(model, inputs, params, max_bytes=max_bytes)
    num_params = sum(p.numel() for p in split_params(model, params)[0].values())
    keep = min(gram.shape[0], num_params)
    if not bool(torch.isfinite(gram).all()):  # NaN/inf weights or outputs (a diverged run): no spectrum exists
        return gram.new_full((keep,), math.nan)
    eig = torch.linalg.eigvalsh(gram).flip(0)[:keep]
    # rounding can leave eigenvalues of a PSD matrix slightly negative; they are zeros
    return eig.clamp_min(0).sqrt()


def _plan_blocks(chosen: dict[str, torch.Tensor], rows: int, max_bytes: int) -> Iterator[tuple[list[str], int]]:
    """Groups of tensors whose ``rows x numel`` Jacobian fits; (name, slices) for a tensor that does not."""
    block, used = [], 0
    for name, t in chosen.items():
        cost = rows * t.numel() * t.element_size()
        if cost > max_bytes:
            yield [name], math.ceil(cost / max_bytes)
            continue
        if block and used + cost > max_bytes:
            yield block, 1
            block, used = [], 0
        block.append(name)
        used += cost
    if block:
        yield block, 1


def _column_slices(width: int, n_slices: int) -> Iterator[slice]:
    """All columns at once, or ``n_slices`` slices of a single tensor too big for one pass."""
    step = math.ceil(width / n_slices)
    for start in range(0, width, step):
        yield slice(start, start + step) if n_slices > 1 else slice(None)


def _add_gram_(gram: torch.Tensor, jac: torch.Tensor, max_bytes: int) -> None:
    """``gram += jac jac^T`` in float64, converting a quarter of ``max_bytes`` of columns at a time."""
    step = max(1, max_bytes // (4 * 8 * jac.shape[0]))
    for start in range(0, jac.shape[1], step):
        j = jac[:, start:start + step].to(torch.float64)
        gram.addmm_(j, j.T)


def _saved_bytes_per_sample(fn, chosen: dict[str, torch.Tensor], x: torch.Tensor) -> int:
    """Bytes autograd saves for one sample's forward: what each backward pass walks back through."""
    total = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    params = {n: t.detach().requires_grad_() for n, t in chosen.items()}
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn(params, x)
    return total
