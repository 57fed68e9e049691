"""Built-in data sets, generated locally and deterministic given a seed."""

from bioflow.datasets.letters import letters, population_response
from bioflow.datasets.sequences import (
    MarkovMotif,
    categorical_toy,
    markov_motif_sequences,
    motif_sequences,
)
from bioflow.datasets.simulated import simulated_differentiation

__all__ = [
    "MarkovMotif",
    "categorical_toy",
    "letters",
    "markov_motif_sequences",
    "motif_sequences",
    "population_response",
    "simulated_differentiation",
]
