"""LightningModules: thin wiring of a path, a coupling, a network and a loss."""

from bioflow._lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    [],
    {
        **dict.fromkeys(["FlowMatchingModule", "LossOutput", "load_model"], ".base"),
        **dict.fromkeys(["CFM_METHODS", "CellFlowMatching"], ".dynamics"),
        "DiscreteFlow": ".discrete",
        **dict.fromkeys(["SEQUENCE_OBJECTIVES", "SequenceFlow", "SequencePredictor"], ".sequence"),
        **dict.fromkeys(["META_METHODS", "MetaFlowMatching"], ".meta"),
    },
)
