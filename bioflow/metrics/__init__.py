"""Distances between point clouds (W1, W2, RBF-MMD, feature-correlation r, off-data
endpoints) and between sets of sequences (per-position marginal KL, k-mer spectrum distances,
NLL under a known model, uniqueness, novelty, motif share, diversity)."""

from bioflow._lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    [],
    {
        **dict.fromkeys(
            [
                "MMD_GAMMAS",
                "compare_distributions",
                "correlation_r",
                "mean_shift_errors",
                "mmd_rbf",
                "wasserstein",
            ],
            ".distribution",
        ),
        "off_data_fraction": ".endpoints",
        **dict.fromkeys(
            [
                "diversity",
                "kmer_distance",
                "kmer_distances",
                "kmer_spectrum",
                "letter_frequencies",
                "marginal_kl",
                "motif_share",
                "negative_log_likelihood",
                "novelty",
                "uniqueness",
            ],
            ".sequence",
        ),
    },
)
