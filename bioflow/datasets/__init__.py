"""Built-in data sets, generated locally and deterministic given a seed.

Imported eagerly (not through :mod:`bioflow._lazy`): ``letters`` is both a function and a
submodule here, and a lazy attribute would let the submodule shadow the function.
"""

from bioflow.datasets.cycle import simulated_cycle_branching
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
    "simulated_cycle_branching",
    "simulated_differentiation",
]
