"""Distances between point clouds (W1, W2, RBF-MMD, feature-correlation r, off-data
endpoints) and between sets of sequences (per-position marginal KL, k-mer spectrum distance)."""

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
            ["kmer_distance", "kmer_spectrum", "letter_frequencies", "marginal_kl"], ".sequence"
        ),
    },
)
