"""Constraint sets of Zhang et al. (2021) and their exact projections; perturbed GD (Jin et al. 2017)."""

from lit_memo.optim.constraints import BallConstraint, Constraint, OuterConstraint
from lit_memo.optim.perturbed_gd import PerturbedGD, PGDConstants, ge_smoothness, pgd_constants
from lit_memo.optim.projections import (
    ball_distance,
    in_outer_set,
    project_ball,
    project_ball_,
    project_outer,
    project_outer_,
)

__all__ = [
    "BallConstraint",
    "Constraint",
    "OuterConstraint",
    "PGDConstants",
    "PerturbedGD",
    "ball_distance",
    "ge_smoothness",
    "in_outer_set",
    "pgd_constants",
    "project_ball",
    "project_ball_",
    "project_outer",
    "project_outer_",
]
