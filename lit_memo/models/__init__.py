"""Plain ``nn.Module`` networks (no Lightning), one file per family."""

from lit_memo.models.layers import ACTIVATIONS, PairwiseLinear, Square, make_activation
from lit_memo.models.shallow import OneHiddenLayerNet

__all__ = ["ACTIVATIONS", "OneHiddenLayerNet", "PairwiseLinear", "Square", "make_activation"]
