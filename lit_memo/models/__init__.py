"""Plain ``nn.Module`` networks (no Lightning), one file per family."""

from lit_memo.models.layers import ACTIVATIONS, PairwiseLinear, Square, make_activation
from lit_memo.models.mlp import MLP
from lit_memo.models.resnet import ResNet18
from lit_memo.models.shallow import OneHiddenLayerNet

__all__ = ["ACTIVATIONS", "MLP", "OneHiddenLayerNet", "PairwiseLinear", "ResNet18", "Square", "make_activation"]
