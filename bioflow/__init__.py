"""bioflow: flow-matching generative models for biological data.

Three model families on one core (:mod:`bioflow.core`): cell dynamics with OT-coupled and
weighted conditional flow matching, Meta Flow Matching over populations, and
Gumbel-Softmax flow matching for sequences.  Scanpy-style entry points live in
:mod:`bioflow.tl` (tools) and :mod:`bioflow.pl` (plots).
"""

__version__ = "0.1.0"

from bioflow import core, data, datasets, metrics, models, nn, pl, tl  # noqa: E402
from bioflow.models import CellFlowMatching, load_model  # noqa: E402

__all__ = [
    "CellFlowMatching",
    "core",
    "data",
    "datasets",
    "load_model",
    "metrics",
    "models",
    "nn",
    "pl",
    "tl",
]
from bioflow import io  # noqa: E402
from bioflow.models import DiscreteFlow, SequenceFlow  # noqa: E402

__all__ += ["DiscreteFlow", "SequenceFlow", "io"]
