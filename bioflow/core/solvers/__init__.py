"""ODE solvers between arbitrary absolute times, forward and backward."""

from bioflow.core.solvers.ode import ODE_METHODS, ODESolver, integrate

__all__ = ["ODE_METHODS", "ODESolver", "integrate"]
