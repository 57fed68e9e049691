"""Built-in data sets, generated locally and deterministic given a seed."""

from bioflow.datasets.simulated import simulated_differentiation

__all__ = ["simulated_differentiation"]
