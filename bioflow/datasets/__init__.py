"""Built-in data sets, generated locally and deterministic given a seed.

Imported eagerly (not through :mod:`bioflow._lazy`): ``letters`` is both a function and a
submodule here, and a lazy attribute would let the submodule shadow the function.
"""

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
