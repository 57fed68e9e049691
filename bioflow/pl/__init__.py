"""Plots that read what :mod:`bioflow.tl` wrote; matplotlib is imported lazily.

Every function accepts ``ax=``, ``show=`` and ``save=``.  As in scanpy, ``show=None``
follows ``scanpy.settings.autoshow``, the axes are returned only when the figure is not
shown (``show=False``), matplotlib's backend is left alone, and categorical colours come
from ``adata.uns["<key>_colors"]`` (scanpy's default palettes otherwise).
"""

from bioflow.pl.dynamics import holdout, trajectories

__all__ = ["holdout", "trajectories"]
from bioflow.pl.sequence import sequence_logo  # noqa: E402

__all__ += ["sequence_logo"]

from bioflow.pl.meta import populations  # noqa: E402

__all__ += ["populations"]

from bioflow.pl.velocity import fate_probabilities, velocity_embedding_stream  # noqa: E402

__all__ += ["fate_probabilities", "velocity_embedding_stream"]
