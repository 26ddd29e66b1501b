"""Constraint sets of Zhang et al. (2021) and their exact projections."""

from lit_memo.optim.constraints import BallConstraint, Constraint, OuterConstraint
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
    "ball_distance",
    "in_outer_set",
    "project_ball",
    "project_ball_",
    "project_outer",
    "project_outer_",
]
