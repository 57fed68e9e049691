"""Distances between point clouds: W1, W2 (exact OT), RBF-MMD, feature-correlation r."""

from bioflow.metrics.distribution import (
    MMD_GAMMAS,
    compare_distributions,
    correlation_r,
    mmd_rbf,
    wasserstein,
)

__all__ = ["MMD_GAMMAS", "compare_distributions", "correlation_r", "mmd_rbf", "wasserstein"]
