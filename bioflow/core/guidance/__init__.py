"""Training-free guidance of flows on the simplex."""

from bioflow.core.guidance.stg import (
    STGradient,
    STGuidance,
    straight_through_gradient,
    straight_through_sample,
)

__all__ = ["STGradient", "STGuidance", "straight_through_gradient", "straight_through_sample"]
