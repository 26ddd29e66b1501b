"""lit_memo: memorization with narrow and mildly over-parametrized networks, in PyTorch Lightning."""

from lit_memo.modules.mirrored import MirroredInitMixin
from lit_memo.modules.projected import ProjectedOptimizerMixin

__version__ = "0.1.0"
__all__ = ["MirroredInitMixin", "ProjectedOptimizerMixin", "__version__"]
