"""Scanpy-style tools: ``adata`` first (``model, adata`` when applying a fitted model).

Functions that annotate write under ``key_added`` and return ``None`` unless ``copy=True``;
the parameters used are recorded in ``adata.uns["bioflow"][key_added]``.
"""

from bioflow.tl.dynamics import evaluate_holdout, fit_dynamics, predict_cells, trajectories
from bioflow.tl.meta import evaluate_populations, fit_meta_flow, predict_population
from bioflow.tl.sequence import fit_sequence_classifier, fit_sequence_flow, sample_sequences
from bioflow.tl.velocity import fate_probabilities, velocity, velocity_embedding

__all__ = [
    "evaluate_holdout",
    "evaluate_populations",
    "fate_probabilities",
    "fit_dynamics",
    "fit_meta_flow",
    "fit_sequence_classifier",
    "fit_sequence_flow",
    "predict_cells",
    "predict_population",
    "sample_sequences",
    "trajectories",
    "velocity",
    "velocity_embedding",
]
