"""Distances between point clouds (W1, W2, RBF-MMD, feature-correlation r) and between sets
of sequences (per-position marginal KL, k-mer spectrum distances, NLL under a known model,
uniqueness, novelty, motif share, diversity)."""

from bioflow.metrics.distribution import (
    MMD_GAMMAS,
    compare_distributions,
    correlation_r,
    mmd_rbf,
    wasserstein,
)
from bioflow.metrics.sequence import (
    diversity,
    kmer_distance,
    kmer_distances,
    kmer_spectrum,
    letter_frequencies,
    marginal_kl,
    motif_share,
    negative_log_likelihood,
    novelty,
    uniqueness,
)

__all__ = [
    "MMD_GAMMAS",
    "compare_distributions",
    "correlation_r",
    "diversity",
    "kmer_distance",
    "kmer_distances",
    "kmer_spectrum",
    "letter_frequencies",
    "marginal_kl",
    "mmd_rbf",
    "motif_share",
    "negative_log_likelihood",
    "novelty",
    "uniqueness",
    "wasserstein",
]
