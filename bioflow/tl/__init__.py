"""Scanpy-style tools: ``adata`` first (``model, adata`` when applying a fitted model).

Functions that annotate write under ``key_added`` and return ``None`` unless ``copy=True``;
the parameters used are recorded in ``adata.uns["bioflow"][key_added]``.
"""

from bioflow.tl.dynamics import evaluate_holdout, fit_dynamics, predict_cells, trajectories

__all__ = ["evaluate_holdout", "fit_dynamics", "predict_cells", "trajectories"]
from bioflow.tl.sequence import (  # noqa: E402
    fit_sequence_classifier,
    fit_sequence_flow,
    sample_sequences,
)

__all__ += ["fit_sequence_classifier", "fit_sequence_flow", "sample_sequences"]

from bioflow.tl.meta import evaluate_populations, fit_meta_flow, predict_population  # noqa: E402

__all__ += ["evaluate_populations", "fit_meta_flow", "predict_population"]

from bioflow.tl.velocity import fate_probabilities, velocity, velocity_embedding  # noqa: E402

__all__ += ["fate_probabilities", "velocity", "velocity_embedding"]
