"""bioflow: flow-matching generative models for biological data.

Three model families on one core (:mod:`bioflow.core`): cell dynamics with OT-coupled and
weighted conditional flow matching, Meta Flow Matching over populations, and
discrete and Gumbel-Softmax flow matching for sequences.  Scanpy-style entry points live in
:mod:`bioflow.tl` (tools) and :mod:`bioflow.pl` (plots).

Subpackages and classes are imported on first use (PEP 562), so ``import bioflow`` is
cheap; torch, lightning, anndata and the rest load when first needed.
"""

__version__ = "0.1.0"

from bioflow._lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    [
        "callbacks",
        "cli",
        "core",
        "data",
        "datasets",
        "demo",
        "io",
        "metrics",
        "models",
        "nn",
        "pl",
        "tl",
    ],
    {
        "CellFlowMatching": ".models",
        "DiscreteFlow": ".models",
        "MetaFlowMatching": ".models",
        "SequenceFlow": ".models",
        "load_model": ".models",
    },
)
