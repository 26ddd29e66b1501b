"""Zero-output ("mirrored") initialization: Zhang et al. (2021) Sec. 4, Daniely (2020) Sec. 2."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator, Optional

import torch
from torch import nn

from lit_memo.models.layers import PairwiseLinear, check_even, lecun_normal_

_BN = nn.modules.batchnorm._BatchNorm
_DROPOUT = nn.modules.dropout._DropoutNd
_MIRRORED_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, _BN, nn.GroupNorm, nn.LayerNorm)
_DRAWN_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)  # weights re-drawn; norms keep theirs
_INPUT_SIZE = {nn.Conv1d: (32,), nn.Conv2d: (32, 32), nn.Conv3d: (16, 16, 16)}  # our choice: small, any stride fits
_CHECK_BATCH = 4  # BatchNorm needs more than one sample in train mode


class MirroredInitMixin:
    """Give every hidden unit/channel a twin so that the network's output is exactly zero.

    ``mirror_init_()`` re-draws the first half of each mirrored layer's output channels (LeCun
    normal by default) and copies it into the second half: weights, biases, BatchNorm affine
    parameters and running statistics, GroupNorm/LayerNorm affine parameters. Twins then compute
    identical features in train and eval mode, and every :class:`PairwiseLinear` output
    ``(phi_1 - phi_2) v`` is exactly 0.

    Mix into any ``nn.Module`` (usually a LightningModule). By default every Linear, Conv,
    BatchNorm, GroupNorm and LayerNorm layer except the pairwise outputs is mirrored; override
    ``mirrored_modules`` to choose. The network must end in a :class:`PairwiseLinear`.

    ``mirror_init_`` then checks the claim itself (``verify=True``): one forward pass on a small
    random batch in train mode and one in eval mode must give exactly 0, else ``ValueError``
    naming the layer that breaks the twins (a Dropout right before the head, a layer left out of
    ``mirrored_modules``, ...). The check restores every buffer, the train/eval flags and the
    random number generators it touches, so it leaves no trace.

    It writes only into storage it allocates: a network unpickled from a checkpoint's
    hyperparameters shares storage with that checkpoint's state_dict, and mirroring it in place
    would overwrite the saved weights before ``load_from_checkpoint`` restores them.
    """

    def mirrored_modules(self) -> Iterator[tuple[str, nn.Module]]:
        for name, module in self.named_modules():
            if isinstance(module, _MIRRORED_TYPES):
                yield name, module

    @torch.no_grad()
    def mirror_init_(
        self,
        weight_init: Optional[Callable[[torch.Tensor], torch.Tensor]] = lecun_normal_,
        *,
        verify: bool = True,
        example_input: Any = None,
    ) -> "MirroredInitMixin":
        """Mirror every layer of ``mirrored_modules()`` and re-draw the pairwise heads.

        Args:
            weight_init: draws the first half of Linear/Conv weights in place (None keeps it).
            verify: check that the output is exactly 0 in train and eval mode (see the class).
            example_input: a batch for the check (a tensor, a tuple of positional arguments or a
                dict of keyword arguments). Default: ``self.example_input_array`` when set (the
                Lightning convention), else a standard normal batch of 4 shaped for the first
                Linear/Conv layer: ``(4, in_features)`` or ``(4, in_channels, 32, 32)`` (32 for
                Conv1d, 16^3 for Conv3d).
        """
        if not any(isinstance(m, PairwiseLinear) for m in self.modules()):
            raise ValueError(f"{type(self).__name__} has no PairwiseLinear output layer; mirroring alone would not zero the output")
        layers = list(self.mirrored_modules())
        for name, module in layers:  # validate everything before touching anything
            _check_mirrorable(name, module)
        for name, module in layers:
            tensors = [getattr(module, k, None) for k in ("weight", "bias", "running_mean", "running_var")]
            tensors = [t for t in tensors if isinstance(t, torch.Tensor) and t.dim() > 0]
            if isinstance(module, nn.LayerNorm) and tensors and tensors[0].shape[0] % 2:
                continue  # it normalizes an odd dimension, so not twinned channels: nothing to pair
            for t in tensors:
                t.data = t.detach().clone()  # own the storage before writing (see the class docstring)
                half = t.shape[0] // 2
                if t is module.weight and weight_init is not None and isinstance(module, _DRAWN_TYPES):
                    weight_init(t[:half])
                t[half:].copy_(t[:half])
        for module in self.modules():
            if isinstance(module, PairwiseLinear):
                module.weight.data = torch.empty_like(module.weight)
                module.reset_parameters()
        if verify and not any(p.is_meta for p in self.parameters()):  # meta tensors (empty init) hold no values
            self.verify_zero_output(example_input)
        return self

    @torch.no_grad()
    def verify_zero_output(self, example_input: Any = None) -> None:
        """Raise ``ValueError`` unless the output is exactly 0 in train and in eval mode (see ``mirror_init_``)."""
        args, kwargs, source = self._zero_check_input(example_input)
        for training in (True, False):
            with _restored(self), _TwinTrace(self) as trace:
                self.train(training)
                try:
                    out = self(*args, **kwargs)
                except Exception as err:
                    raise ValueError(
                        f"mirror_init_ could not run {type(self).__name__} on {source} to check that its output is zero "
                        f"({type(err).__name__}: {err}). Pass example_input= (one batch), set self.example_input_array, "
                        f"or pass verify=False to skip the check") from err
                worst = max((t.detach().abs().max().item() for t in _tensors(out) if t.numel()), default=0.0)
                if worst != 0.0:
                    mode = "train" if training else "eval"
                    raise ValueError(f"after mirror_init_ the output of {type(self).__name__} is not zero in {mode} mode "
                                     f"(max |f| = {worst:.3g} on {source}): {trace.culprit()}")

    def _zero_check_input(self, example_input: Any) -> tuple[tuple, dict, str]:
        if example_input is None:
            example_input = getattr(self, "example_input_array", None)
            source = "self.example_input_array"
        else:
            source = "example_input"
        if example_input is None:
            example_input, source = _inferred_input(self)
        if isinstance(example_input, dict):
            return (), example_input, source
        if isinstance(example_input, (tuple, list)):
            return tuple(example_input), {}, source
        return (example_input,), {}, source


def _check_mirrorable(name: str, module: nn.Module) -> None:
    if isinstance(module, nn.GroupNorm):
        check_even(module.num_channels, name)
        groups = module.num_groups
        if groups > 1 and groups % 2:
            raise ValueError(
                f"layer {name!r} is GroupNorm with {groups} groups of {module.num_channels // groups} channels: twin "
                f"channels c and c + {module.num_channels // 2} fall in groups with different statistics, so the output "
                f"cannot be zero. Use an even number of groups (or 1), or leave it out of mirrored_modules()")
    elif isinstance(module, nn.LayerNorm):
        pass  # nothing to check: it pools every channel into one set of statistics
    elif isinstance(module, _BN):
        check_even(module.num_features, name)
    else:
        check_even(module.weight.shape[0], name)


def _inferred_input(root: nn.Module) -> tuple[torch.Tensor, str]:
    for name, module in root.named_modules():
        if isinstance(module, nn.Linear):
            shape = (_CHECK_BATCH, module.in_features)
        elif type(module) in _INPUT_SIZE:
            shape = (_CHECK_BATCH, module.in_channels, *_INPUT_SIZE[type(module)])
        else:
            continue
        w = module.weight
        g = torch.Generator(device=w.device).manual_seed(0)  # a private generator: the global RNG stays untouched
        x = torch.randn(shape, generator=g, device=w.device, dtype=w.dtype)
        return x, f"a random batch of shape {tuple(shape)} (inferred from layer {name!r})"
    raise ValueError("mirror_init_ cannot infer an input shape (no Linear or Conv layer): pass example_input= or verify=False")


def _tensors(out: Any) -> Iterator[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        yield out
    elif isinstance(out, dict):
        for v in out.values():
            yield from _tensors(v)
    elif isinstance(out, (tuple, list)):
        for v in out:
            yield from _tensors(v)


@contextmanager
def _restored(root: nn.Module) -> Iterator[None]:
    """Run a forward pass that leaves no trace: buffers (BatchNorm statistics), train flags, RNGs."""
    modes = [(m, m.training) for m in root.modules()]
    buffers = [(b, b.detach().clone()) for b in root.buffers()]
    devices = sorted({t.device.index or 0 for t in root.parameters() if t.device.type == "cuda"})
    try:
        with torch.random.fork_rng(devices=devices):
            yield
    finally:
        for b, saved in buffers:
            b.copy_(saved)
        for m, training in modes:
            m.training = training


def _twinned(t: Any, dim: int) -> bool:
    if not isinstance(t, torch.Tensor) or t.dim() < 2 or t.shape[dim] % 2:
        return False
    a, b = t.detach().chunk(2, dim)
    return torch.equal(a, b)


class _TwinTrace:
    """Forward hooks that find the layer turning twin features (equal halves) into non-twins."""

    def __init__(self, root: nn.Module) -> None:
        self.root = root
        self.events: list[tuple[str, nn.Module, bool, bool]] = []  # name, module, twins in, twins out
        self.head_inputs: list[bool] = []

    def __enter__(self) -> "_TwinTrace":
        self.handles = []
        for name, module in self.root.named_modules():
            if isinstance(module, PairwiseLinear):
                self.handles.append(module.register_forward_pre_hook(self._head))
            elif not any(True for _ in module.children()):
                self.handles.append(module.register_forward_hook(self._hook(name)))
        return self

    def __exit__(self, *exc: Any) -> None:
        for h in self.handles:
            h.remove()

    def _hook(self, name: str):
        def hook(module, inputs, output):
            for dim in (1, -1):
                if any(_twinned(x, dim) for x in inputs):
                    self.events.append((name, module, True, _twinned(output, dim)))
                    return
            self.events.append((name, module, False, _twinned(output, 1) or _twinned(output, -1)))
        return hook

    def _head(self, module, inputs):
        self.head_inputs.append(_twinned(inputs[0], -1))

    def culprit(self) -> str:
        if self.head_inputs and all(self.head_inputs):
            return ("every PairwiseLinear head receives twin features (its output is 0), so something after the head "
                    "adds to the output; the network must end in the PairwiseLinear")
        last_twins = max((i for i, (_, _, _, out) in enumerate(self.events) if out), default=-1)
        for name, module, twins_in, twins_out in reversed(self.events[last_twins + 1:]):
            if twins_in and not twins_out:
                return f"layer {name!r} ({type(module).__name__}) turns twin features into different ones. " + _hint(module)
        after = f"after layer {self.events[last_twins][0]!r}, " if last_twins >= 0 else ""
        return (f"the features entering the PairwiseLinear head are not twins; {after}an operation that is not an "
                f"nn.Module (e.g. F.dropout) or a layer left out of mirrored_modules() breaks them")


def _hint(module: nn.Module) -> str:
    if isinstance(module, _DROPOUT) or isinstance(module, (nn.AlphaDropout, nn.FeatureAlphaDropout)):
        return ("In train mode the twins get independent dropout masks. Remove it, move it before the last mirrored "
                "layer (dropout feeding a mirrored layer is harmless), or pass verify=False to accept a non-zero "
                "output in train mode")
    return "Add it to mirrored_modules() if it has per-channel parameters, or replace it"
