"""Conditional probability paths: how x_t and the target velocity are drawn for a pair."""

from bioflow.core.paths.affine import BrownianBridgePath, LinearPath, PathSample, ProbabilityPath

__all__ = ["BrownianBridgePath", "LinearPath", "PathSample", "ProbabilityPath"]
from bioflow.core.paths.simplex import GumbelSoftmaxPath, SimplexPathSample  # noqa: E402

__all__ += ["GumbelSoftmaxPath", "SimplexPathSample"]
from bioflow.core.paths.discrete import (  # noqa: E402
    DiscretePathSample,
    MixtureDiscretePath,
    PolynomialScheduler,
)

__all__ += ["DiscretePathSample", "MixtureDiscretePath", "PolynomialScheduler"]
