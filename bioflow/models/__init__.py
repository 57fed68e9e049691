"""LightningModules: thin wiring of a path, a coupling, a network and a loss."""

from bioflow.models.base import FlowMatchingModule, LossOutput, load_model
from bioflow.models.dynamics import CFM_METHODS, CellFlowMatching

__all__ = ["CFM_METHODS", "CellFlowMatching", "FlowMatchingModule", "LossOutput", "load_model"]
from bioflow.models.sequence import (  # noqa: E402
    SEQUENCE_OBJECTIVES,
    SequenceFlow,
    SequencePredictor,
)

__all__ += ["SEQUENCE_OBJECTIVES", "SequenceFlow", "SequencePredictor"]
from bioflow.models.discrete import DiscreteFlow  # noqa: E402

__all__ += ["DiscreteFlow"]

from bioflow.models.meta import META_METHODS, MetaFlowMatching  # noqa: E402

__all__ += ["META_METHODS", "MetaFlowMatching"]
