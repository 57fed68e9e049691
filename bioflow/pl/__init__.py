"""Plots that read what :mod:`bioflow.tl` wrote; matplotlib is imported lazily.

Every function accepts ``ax=``, ``show=`` and ``save=``.  As in scanpy, ``show=None``
follows ``scanpy.settings.autoshow``, the axes are returned only when the figure is not
shown (``show=False``), matplotlib's backend is left alone, and categorical colours come
from ``adata.uns["<key>_colors"]`` (scanpy's default palettes otherwise).
"""

from bioflow.pl.dynamics import holdout, trajectories
from bioflow.pl.meta import populations
from bioflow.pl.sequence import sequence_logo
from bioflow.pl.velocity import fate_probabilities, velocity_embedding_stream

__all__ = [
    "fate_probabilities",
    "holdout",
    "populations",
    "sequence_logo",
    "trajectories",
    "velocity_embedding_stream",
]
