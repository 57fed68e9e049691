"""Fixed-step (Euler, midpoint, RK4) and adaptive (dopri5, via torchdiffeq) ODE solvers.

A velocity field is any callable ``f(t, x) -> dx/dt`` where ``t`` is a 0-d tensor (the
absolute time shared by the batch) and ``x`` has shape ``(n, *dims)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

VelocityField = Callable[[Tensor, Tensor], Tensor]

ODE_METHODS = ("euler", "midpoint", "rk4", "dopri5")


def _euler(f: VelocityField, t: Tensor, x: Tensor, h: Tensor) -> Tensor:
    return x + h * f(t, x)


def _midpoint(f: VelocityField, t: Tensor, x: Tensor, h: Tensor) -> Tensor:
    k1 = f(t, x)
    return x + h * f(t + h / 2, x + h / 2 * k1)


def _rk4(f: VelocityField, t: Tensor, x: Tensor, h: Tensor) -> Tensor:
    k1 = f(t, x)
    k2 = f(t + h / 2, x + h / 2 * k1)
    k3 = f(t + h / 2, x + h / 2 * k2)
    k4 = f(t + h, x + h * k3)
    return x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)


_STEPPERS = {"euler": _euler, "midpoint": _midpoint, "rk4": _rk4}


def integrate(
    velocity: VelocityField,
    x0: Tensor,
    times: Sequence[float] | Tensor,
    *,
    method: str = "rk4",
    steps: int = 20,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    return_path: bool = False,
) -> Tensor:
    """Integrate ``dx/dt = velocity(t, x)`` from ``times[0]`` through ``times[-1]``.

    Parameters
    ----------
    velocity
        Callable ``f(t, x)`` with ``t`` a 0-d tensor and ``x`` of shape ``(n, *dims)``.
    x0
        State at ``times[0]``, shape ``(n, *dims)``.
    times
        Absolute times, strictly increasing (forward) or strictly decreasing (backward);
        at least two.
    method
        ``"euler"``, ``"midpoint"``, ``"rk4"`` (fixed step) or ``"dopri5"`` (adaptive).
    steps
        For fixed-step methods: the number of steps over the whole span; each segment
        between consecutive ``times`` gets a share proportional to its length (at least 1).
    rtol, atol
        Tolerances of ``dopri5``.
    return_path
        Return the state at every entry of ``times`` instead of only the last.

    Returns
    -------
    torch.Tensor
        Shape ``(n, *dims)``, or ``(len(times), n, *dims)`` with ``return_path=True``.

    Examples
    --------
    >>> import torch
    >>> from bioflow.core import integrate
    >>> x = integrate(lambda t, x: -x, torch.ones(1, 1), [0.0, 1.0], steps=50)
    >>> round(float(x), 4)
    0.3679
    """
    if method not in ODE_METHODS:
        raise ValueError(f"unknown ODE method {method!r}; choose one of {ODE_METHODS}")
    t = torch.as_tensor(times, dtype=x0.dtype, device=x0.device).flatten()
    if t.numel() < 2:
        raise ValueError("`times` needs at least two entries")
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"`times` must be finite numbers, got {t.tolist()}")
    d = t[1:] - t[:-1]
    if not (bool((d > 0).all()) or bool((d < 0).all())):
        raise ValueError(f"`times` must be strictly monotone, got {t.tolist()}")
    if isinstance(steps, bool) or not hasattr(steps, "__index__") or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")

    if method == "dopri5":
        from torchdiffeq import odeint

        path = odeint(velocity, x0, t, method="dopri5", rtol=rtol, atol=atol)
        return path if return_path else path[-1]

    step = _STEPPERS[method]
    span = float((t[-1] - t[0]).abs())
    out = [x0]
    x = x0
    for k in range(t.numel() - 1):
        seg = float((t[k + 1] - t[k]).abs())
        n_seg = max(1, round(steps * seg / span))
        h = (t[k + 1] - t[k]) / n_seg
        for i in range(n_seg):
            x = step(velocity, t[k] + i * h, x, h)
        out.append(x)
    return torch.stack(out) if return_path else x
