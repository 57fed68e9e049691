"""Plots that read what :mod:`bioflow.tl` wrote; matplotlib is imported lazily.

Every function accepts ``ax=``, ``show=`` and ``save=`` and returns the matplotlib axes.
"""

from bioflow.pl.dynamics import holdout, trajectories
from bioflow.pl.meta import populations
from bioflow.pl.sequence import sequence_logo

__all__ = ["holdout", "populations", "sequence_logo", "trajectories"]
