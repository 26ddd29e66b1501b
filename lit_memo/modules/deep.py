"""What the deep families (ResNet-18, MLP) share: a constrained group named by modules, a pairwise head."""

from __future__ import annotations

from typing import Sequence

from torch import nn

from lit_memo.modules.base import MemorizationModule


class DeepNetModule(MemorizationModule):
    """A :class:`MemorizationModule` whose constrained hidden group is a list of submodules of ``net``.

    Zhang et al. (2021, Sec. 5.2) constrain one block of a deep network ("the 4th block" of
    ResNet-18, the second hidden layer of the MNIST net): every parameter of the modules named in
    ``constrained_modules`` (names inside ``net``, e.g. ``layer4`` or ``hidden.1``) is one vector
    in one Frobenius ball ``||W - W0||_F <= radius`` around its initial value.

    The outer weights are the head's ``weight`` (``net.<head_name>``). For ``C`` classes the
    pairwise head trains ``v`` of shape ``C x width/2``; OUR CHOICE: the set V constrains all
    ``C * width/2`` entries of that matrix together, as one vector (``|v_ij| >= zeta`` for every
    entry and ``max|v| <= gamma min|v|`` over the whole matrix), which is what
    :class:`lit_memo.optim.OuterConstraint` does. The paper states V for one output only.

    A subclass builds ``self.net`` and then calls ``self._finish_net_()``.
    """

    head_name = "output"

    def __init__(self, constrained_modules: Sequence[str] = (), **kwargs) -> None:
        super().__init__(**kwargs)
        self.constrained_modules = list(constrained_modules)

    def _finish_net_(self) -> None:
        self._check_constrained_modules()
        self.init_network_()

    def _check_constrained_modules(self) -> None:
        field = "model.init_args.constrained_modules"
        modules = dict(self.net.named_modules())
        top = ", ".join(name for name, _ in self.net.named_children())
        if not self.constrained_modules:
            raise ValueError(f"{field} is empty: name the modules of the constrained block (top-level modules: {top})")
        for name in self.constrained_modules:
            if name not in modules or name == "":
                raise ValueError(f"{field}: {name!r} is not a module of {type(self.net).__name__} "
                                 f"(top-level modules: {top}; nested ones as 'layer4.1.conv2')")
            if name == self.head_name or name.startswith(self.head_name + "."):
                raise ValueError(f"{field}: {name!r} is the output layer, which carries the outer weights v, "
                                 "not the constrained hidden block")
            if not any(True for _ in modules[name].parameters()):
                raise ValueError(f"{field}: module {name!r} has no parameters to constrain")

    def hidden_parameters(self) -> list[nn.Parameter]:
        modules = dict(self.net.named_modules())
        params, seen = [], set()
        for name in self.constrained_modules:  # nested names may overlap: each parameter once
            for p in modules[name].parameters():
                if id(p) not in seen:
                    seen.add(id(p))
                    params.append(p)
        return params

    def outer_parameters(self) -> list[nn.Parameter]:
        return [getattr(self.net, self.head_name).weight]
