"""What every diagnostic shares: which parameters it differentiates and how the model is evaluated.

Diagnostics are pure functions of ``(model, params, inputs)`` through ``torch.func.functional_call``
(the neural-tangents style of STYLE.md): the chosen parameters become explicit arguments, every
other parameter a detached constant, so nothing reaches the real parameters' ``.grad`` or the
autograd hooks DDP registers on them.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Optional, Sequence, Union

import torch
from torch import nn

ParamSpec = Optional[Sequence[Union[str, torch.Tensor]]]


def resolve_params(model: nn.Module, params: ParamSpec = None) -> dict[str, torch.Tensor]:
    """Name -> parameter for ``params``, in the model's order.

    ``params`` holds parameter names (``net.hidden.weight``), module prefixes (``net.hidden``
    takes every parameter below it) or the parameters themselves; None means every parameter
    that requires grad.
    """
    named = dict(model.named_parameters())
    if params is None:
        chosen = {n for n, p in named.items() if p.requires_grad}
    else:
        by_id = {id(p): n for n, p in named.items()}
        chosen = set()
        for item in params:
            if isinstance(item, str):
                hits = [n for n in named if n == item or n.startswith(item + ".")]
                if not hits:
                    raise ValueError(f"{item!r} names no parameter or module of {type(model).__name__}; "
                                     f"parameters are: {', '.join(named)}")
                chosen.update(hits)
            elif isinstance(item, torch.Tensor) and id(item) in by_id:
                chosen.add(by_id[id(item)])
            else:
                raise ValueError(f"a {type(item).__name__} of shape {tuple(getattr(item, 'shape', ()))} "
                                 f"is not a parameter of {type(model).__name__}")
    if not chosen:
        raise ValueError(f"no parameters chosen from {type(model).__name__} (none requires grad?)")
    return {n: p for n, p in named.items() if n in chosen}


def split_params(model: nn.Module, params: ParamSpec = None) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(chosen, rest): detached values of the chosen parameters and of all the others."""
    chosen = resolve_params(model, params)
    rest = {n: p.detach() for n, p in model.named_parameters() if n not in chosen}
    return {n: p.detach() for n, p in chosen.items()}, rest


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Evaluate in eval mode, then restore every submodule's own train/eval flag.

    Eval mode makes the diagnostics deterministic functions of the weights: BatchNorm uses its
    running statistics (so each sample's output depends on that sample only and no buffer is
    updated) and dropout is off.
    """
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, mode in modes:
            module.training = mode
