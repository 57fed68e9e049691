"""Built-in data sets, generated locally and deterministic given a seed."""

from bioflow.datasets.letters import letters, population_response
from bioflow.datasets.sequences import categorical_toy, motif_sequences
from bioflow.datasets.simulated import simulated_differentiation

__all__ = [
    "categorical_toy",
    "letters",
    "motif_sequences",
    "population_response",
    "simulated_differentiation",
]
