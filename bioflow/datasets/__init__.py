"""Built-in data sets, generated locally and deterministic given a seed."""

from bioflow.datasets.simulated import simulated_differentiation

__all__ = ["simulated_differentiation"]
from bioflow.datasets.sequences import categorical_toy, motif_sequences  # noqa: E402

__all__ += ["categorical_toy", "motif_sequences"]

from bioflow.datasets.letters import letters, population_response  # noqa: E402

__all__ += ["letters", "population_response"]

from bioflow.datasets.cycle import simulated_cycle_branching  # noqa: E402

__all__ += ["simulated_cycle_branching"]
