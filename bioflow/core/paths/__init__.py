"""Conditional probability paths: one interface, ``sample(x0, x1, t) -> PathSample``."""

from bioflow.core.paths.affine import AffinePath, BrownianBridgePath, LinearPath
from bioflow.core.paths.base import PathSample, ProbabilityPath
from bioflow.core.paths.simplex import GumbelSoftmaxPath, SimplexPathSample

__all__ = [
    "AffinePath",
    "BrownianBridgePath",
    "GumbelSoftmaxPath",
    "LinearPath",
    "PathSample",
    "ProbabilityPath",
    "SimplexPathSample",
]
