"""Conditional probability paths: one interface, ``sample(x0, x1, t) -> PathSample``."""

from bioflow.core.paths.affine import AffinePath, BrownianBridgePath, LinearPath
from bioflow.core.paths.base import PathSample, ProbabilityPath
from bioflow.core.paths.discrete import DiscretePathSample, MixtureDiscretePath, PolynomialScheduler
from bioflow.core.paths.simplex import GumbelSoftmaxPath, SimplexPathSample

__all__ = [
    "AffinePath",
    "BrownianBridgePath",
    "DiscretePathSample",
    "GumbelSoftmaxPath",
    "LinearPath",
    "MixtureDiscretePath",
    "PolynomialScheduler",
    "PathSample",
    "ProbabilityPath",
    "SimplexPathSample",
]
