"""Plain ``nn.Module`` networks (no Lightning), one file per family."""

from lit_memo.models.daniely import ZeroOutputNet
from lit_memo.models.layers import ACTIVATIONS, PairwiseLinear, Square, make_activation
from lit_memo.models.mlp import MLP
from lit_memo.models.resnet import ResNet18
from lit_memo.models.quadratic import QuadraticNet, RandomFeatures, ThreeLayerQuadraticNet
from lit_memo.models.shallow import OneHiddenLayerNet

__all__ = ["ACTIVATIONS", "MLP", "OneHiddenLayerNet", "PairwiseLinear", "QuadraticNet", "RandomFeatures", "ResNet18", "Square", "ThreeLayerQuadraticNet", "ZeroOutputNet", "make_activation"]
