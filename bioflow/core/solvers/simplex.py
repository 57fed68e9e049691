"""Euler integration that keeps every position on the probability simplex."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


def project_simplex(x: Tensor, eps: float = 1e-8) -> Tensor:
    """Clamp ``x`` ``(..., K)`` at ``eps`` and renormalise over the last axis.

    Examples
    --------
    >>> import torch
    >>> project_simplex(torch.tensor([[-0.1, 0.6, 0.6]])).sum().item()
    1.0
    """
    x = x.clamp_min(eps)
    return x / x.sum(-1, keepdim=True)


def simplex_euler(
    velocity: Callable[[Tensor, Tensor], Tensor],
    x0: Tensor,
    *,
    t0: float = 0.0,
    t1: float = 1.0,
    steps: int = 100,
    eps: float = 1e-8,
    return_path: bool = False,
) -> Tensor:
    """Integrate ``dx/dt = velocity(t, x)`` with Euler steps, projecting onto the simplex.

    Parameters
    ----------
    velocity
        ``f(t, x)`` with ``t`` a 0-d tensor and ``x`` of shape ``(n, L, K)``.
    x0
        Start points on the simplex, ``(n, L, K)``.
    t0, t1
        Time interval.
    steps
        Number of Euler steps (>= 1).
    eps
        Floor of each coordinate before renormalising.
    return_path
        Return all ``steps + 1`` states, shape ``(steps + 1, n, L, K)``.

    Returns
    -------
    torch.Tensor
        Final state ``(n, L, K)`` (or the path).

    Examples
    --------
    >>> import torch
    >>> x = torch.full((2, 3, 4), 0.25)
    >>> simplex_euler(lambda t, x: torch.zeros_like(x), x, steps=5).shape
    torch.Size([2, 3, 4])
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    ts = torch.linspace(t0, t1, steps + 1, device=x0.device)
    x = project_simplex(x0, eps)
    path = [x]
    for i in range(steps):
        h = ts[i + 1] - ts[i]
        x = project_simplex(x + h * velocity(ts[i], x), eps)
        if return_path:
            path.append(x)
    return torch.stack(path) if return_path else x
