"""Seeing host syncs on a CPU: every ATen op is recorded by a dispatch mode; a read back to the host
is ``_local_scalar_dense`` (``.item()``, ``bool()``, ``float()``) or an op whose output size depends
on the data (``nonzero``, ``unique``, ...), the ops ``torch.cuda.set_sync_debug_mode`` flags on a GPU."""

from __future__ import annotations

from torch.utils._python_dispatch import TorchDispatchMode

SYNC_OPS = ("_local_scalar_dense", "nonzero", "unique", "masked_select", "item", "is_nonzero", "equal")


class OpRecorder(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.ops: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(func.__name__)
        return func(*args, **(kwargs or {}))

    def syncs(self) -> list[str]:
        return [op for op in self.ops if any(s in op for s in SYNC_OPS)]
