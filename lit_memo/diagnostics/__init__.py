"""Pure diagnostic functions (torch.func): Jacobian/NTK spectrum, Hessian extreme eigenvalues.

The callbacks in the top-level ``callbacks`` package are thin shells over these.
"""

from lit_memo.diagnostics.functional import eval_mode, resolve_params, split_params
from lit_memo.diagnostics.hessian import hessian_extreme_eigenvalues, hessian_vector_product
from lit_memo.diagnostics.jacobian import jacobian_gram, jacobian_spectrum
from lit_memo.diagnostics.lanczos import lanczos_extreme_eigenvalues
from lit_memo.diagnostics.ntk import ntk_drift, ntk_gram
from lit_memo.diagnostics.rank import default_rtol, numerical_rank, spectrum_summary
from lit_memo.diagnostics.theory import (
    Condition,
    condition_metrics,
    kron_gram,
    kron_sigma_min,
    kron_singular_values,
    rank_limit,
    width_conditions,
)

__all__ = [
    "Condition",
    "condition_metrics",
    "default_rtol",
    "eval_mode",
    "hessian_extreme_eigenvalues",
    "hessian_vector_product",
    "jacobian_gram",
    "jacobian_spectrum",
    "kron_gram",
    "kron_sigma_min",
    "kron_singular_values",
    "lanczos_extreme_eigenvalues",
    "ntk_drift",
    "ntk_gram",
    "numerical_rank",
    "rank_limit",
    "resolve_params",
    "spectrum_summary",
    "split_params",
    "width_conditions",
]
