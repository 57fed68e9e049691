"""Conditional probability paths: how x_t and the target velocity are drawn for a pair."""

from bioflow.core.paths.affine import BrownianBridgePath, LinearPath, PathSample, ProbabilityPath

__all__ = ["BrownianBridgePath", "LinearPath", "PathSample", "ProbabilityPath"]
from bioflow.core.paths.simplex import GumbelSoftmaxPath, SimplexPathSample  # noqa: E402

__all__ += ["GumbelSoftmaxPath", "SimplexPathSample"]
