"""LightningModules: thin wiring of a path, a coupling, a network and a loss."""

from bioflow.models.base import FlowMatchingModule, LossOutput, load_model
from bioflow.models.discrete import DiscreteFlow
from bioflow.models.dynamics import CFM_METHODS, CellFlowMatching
from bioflow.models.meta import META_METHODS, MetaFlowMatching
from bioflow.models.sequence import SEQUENCE_OBJECTIVES, SequenceFlow, SequencePredictor

__all__ = [
    "CFM_METHODS",
    "META_METHODS",
    "SEQUENCE_OBJECTIVES",
    "CellFlowMatching",
    "DiscreteFlow",
    "FlowMatchingModule",
    "LossOutput",
    "MetaFlowMatching",
    "SequenceFlow",
    "SequencePredictor",
    "load_model",
]
