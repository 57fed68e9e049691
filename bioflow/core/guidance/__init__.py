"""Training-free guidance of flows on the simplex."""

from bioflow.core.guidance.stg import STGuidance, straight_through_sample

__all__ = ["STGuidance", "straight_through_sample"]
