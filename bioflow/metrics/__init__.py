"""Distances between point clouds (W1, W2, RBF-MMD, feature-correlation r) and between sets
of sequences (per-position marginal KL, k-mer spectrum distance)."""

from bioflow.metrics.distribution import (
    MMD_GAMMAS,
    compare_distributions,
    correlation_r,
    mean_shift_errors,
    mmd_rbf,
    wasserstein,
)
from bioflow.metrics.sequence import kmer_distance, kmer_spectrum, letter_frequencies, marginal_kl

__all__ = [
    "MMD_GAMMAS",
    "compare_distributions",
    "correlation_r",
    "kmer_distance",
    "kmer_spectrum",
    "letter_frequencies",
    "marginal_kl",
    "mean_shift_errors",
    "mmd_rbf",
    "wasserstein",
]
