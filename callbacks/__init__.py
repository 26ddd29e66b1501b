"""Lightning callbacks that log the memorization diagnostics; thin shells over lit_memo.diagnostics."""

from callbacks.constraint_boundary import ConstraintBoundaryCallback
from callbacks.hessian_eigen import HessianEigenCallback
from callbacks.jacobian_rank import JacobianRankCallback
from callbacks.ntk_drift import NTKDriftCallback

__all__ = ["ConstraintBoundaryCallback", "HessianEigenCallback", "JacobianRankCallback", "NTKDriftCallback"]
