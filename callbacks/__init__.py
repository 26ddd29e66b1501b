"""Lightning callbacks that log the memorization diagnostics; thin shells over lit_memo.diagnostics."""

from .constraint_boundary import ConstraintBoundaryCallback
from .divergence import DivergenceStop
from .hessian_eigen import HessianEigenCallback
from .jacobian_rank import JacobianRankCallback
from .ntk_drift import NTKDriftCallback
from .perturbed_gd import PerturbedGDCallback
from .step_checkpoint import StepCheckpoint
from .theory import TheoryCertificateCallback

__all__ = ["ConstraintBoundaryCallback", "DivergenceStop", "HessianEigenCallback", "JacobianRankCallback", "NTKDriftCallback", "PerturbedGDCallback",
           "StepCheckpoint", "TheoryCertificateCallback"]
