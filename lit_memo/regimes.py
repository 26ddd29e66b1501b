"""The three training regimes of Zhang et al. (2021); the one place that knows what each implies."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Regime:
    name: str
    mirrored: bool  # mirrored init + pairwise output layer (f = (phi_1 - phi_2) v, zero at init)
    ball: bool  # hidden weights projected onto ||W - W0||_F <= radius after every step
    outer_set: bool  # outer weights v projected onto V = {|v_i| >= zeta, max|v| <= gamma min|v|}


REGIMES = {
    "ours": Regime("ours", mirrored=True, ball=True, outer_set=True),
    "regular": Regime("regular", mirrored=False, ball=False, outer_set=False),
    # the paper's ablation: the regular network and init, with the ball constraint only
    "constrained_regular": Regime("constrained_regular", mirrored=False, ball=True, outer_set=False),
}


def get_regime(name: str) -> Regime:
    try:
        return REGIMES[name]
    except KeyError:
        raise ValueError(f"unknown regime {name!r}; choose one of {sorted(REGIMES)}") from None
