"""Scanpy-style tools: ``adata`` first (``model, adata`` when applying a fitted model).

Functions that annotate write under ``key_added`` and return ``None`` unless ``copy=True``;
the parameters used are recorded in ``adata.uns["bioflow"][key_added]``.
"""

from bioflow._lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    [],
    {
        **dict.fromkeys(
            ["evaluate_holdout", "fit_dynamics", "predict_cells", "trajectories"], ".dynamics"
        ),
        **dict.fromkeys(
            ["fit_sequence_classifier", "fit_sequence_flow", "sample_sequences"], ".sequence"
        ),
        **dict.fromkeys(["evaluate_populations", "fit_meta_flow", "predict_population"], ".meta"),
    },
)
