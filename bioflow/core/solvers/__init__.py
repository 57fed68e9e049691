"""ODE solvers between arbitrary absolute times, forward and backward."""

from bioflow.core.solvers.ode import ODE_METHODS, ODESolver, integrate

__all__ = ["ODE_METHODS", "ODESolver", "integrate"]
from bioflow.core.solvers.simplex import (  # noqa: E402
    gumbel_softmax_ode,
    project_simplex,
    simplex_euler,
)

__all__ += ["gumbel_softmax_ode", "project_simplex", "simplex_euler"]
