"""Argument checks shared by the dataset generators."""

from __future__ import annotations

import math

import numpy as np


def check_count(name: str, value, minimum: int = 1) -> None:
    """Refuse ``value`` unless it is an integer >= ``minimum`` (naming ``name``)."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def check_scale(name: str, value) -> None:
    """Refuse ``value`` unless it is a finite number >= 0 (naming ``name``)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float | np.number)
        or not (math.isfinite(value) and value >= 0)
    ):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
