"""Built-in data sets, generated locally and deterministic given a seed."""

from bioflow.datasets.simulated import simulated_differentiation

__all__ = ["simulated_differentiation"]
from bioflow.datasets.sequences import (  # noqa: E402
    MarkovMotif,
    categorical_toy,
    markov_motif_sequences,
    motif_sequences,
)

__all__ += ["MarkovMotif", "categorical_toy", "markov_motif_sequences", "motif_sequences"]

from bioflow.datasets.letters import letters, population_response  # noqa: E402

__all__ += ["letters", "population_response"]
