"""LightningModules (one per architecture family) and the two reusable mixins."""

from lit_memo.modules.base import MemorizationModule
from lit_memo.modules.daniely import DanielyModule
from lit_memo.modules.mirrored import MirroredInitMixin
from lit_memo.modules.mlp import MLPModule
from lit_memo.modules.projected import ProjectedOptimizerMixin
from lit_memo.modules.quadratic import QuadraticModule, ThreeLayerQuadraticModule
from lit_memo.modules.resnet import ResNet18Module
from lit_memo.modules.shallow import ShallowNetModule

__all__ = ["DanielyModule", "MemorizationModule", "MirroredInitMixin", "MLPModule", "ProjectedOptimizerMixin", "QuadraticModule", "ResNet18Module", "ShallowNetModule", "ThreeLayerQuadraticModule"]
