"""bioflow: flow-matching generative models for biological data.

Three model families on one core (:mod:`bioflow.core`): cell dynamics with OT-coupled and
weighted conditional flow matching, Meta Flow Matching over populations, and
discrete and Gumbel-Softmax flow matching for sequences.  Scanpy-style entry points live in
:mod:`bioflow.tl` (tools) and :mod:`bioflow.pl` (plots).
"""

from bioflow import core, data, datasets, io, metrics, models, nn, pl, tl
from bioflow.models import (
    CellFlowMatching,
    DiscreteFlow,
    MetaFlowMatching,
    SequenceFlow,
    load_model,
)

__version__ = "0.1.0"

__all__ = [
    "CellFlowMatching",
    "DiscreteFlow",
    "MetaFlowMatching",
    "SequenceFlow",
    "__version__",
    "core",
    "data",
    "datasets",
    "io",
    "load_model",
    "metrics",
    "models",
    "nn",
    "pl",
    "tl",
]
