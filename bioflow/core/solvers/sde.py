"""Euler-Maruyama sampler for the SDE of a Schrödinger bridge learned by score and flow matching.

SF2M (Tong et al. 2024) learns the probability-flow velocity ``v(t, x)`` of the bridge and
the score ``s(t, x) = grad_x log p_t(x)`` of its marginals.  The SDE with the same
marginals and diffusion ``g`` is

    forward:   dx = [v + g^2 / 2 s] dt + g dW
    backward:  dx = [v - g^2 / 2 s] dt + g dW   (integrated towards earlier times)

The ODE ``dx = v dt`` has the same marginals too; :func:`sde_integrate` can switch from the
SDE to it at a chosen time (stochastic early, where fates are decided; deterministic late,
which removes the last steps' noise).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

Field = Callable[[Tensor, Tensor], Tensor]


def sde_integrate(
    velocity: Field,
    score: Field,
    x0: Tensor,
    times: Sequence[float] | Tensor,
    *,
    g: float,
    steps: int = 100,
    ode_after: float | None = None,
    generator: torch.Generator | None = None,
    return_path: bool = False,
) -> Tensor:
    """Integrate the bridge SDE by Euler-Maruyama from ``times[0]`` through ``times[-1]``.

    Parameters
    ----------
    velocity, score
        Callables ``f(t, x)`` with ``t`` a 0-d tensor and ``x`` ``(n, d)``: the
        probability-flow velocity and the score of the marginals.
    x0
        State at ``times[0]``, ``(n, d)``.
    times
        Absolute times, strictly increasing or strictly decreasing (backward in time uses
        the reverse-time SDE).
    g
        Diffusion per unit time (``>= 0``; 0 gives Euler on the ODE).
    steps
        Steps over the whole span, shared among segments in proportion to their length.
    ode_after
        Absolute time after which (in the direction of integration) the sampler follows
        the ODE ``dx = v dt`` with no noise; ``None`` keeps the SDE throughout.
    generator
        Torch generator of the Brownian increments (reproducible draws).
    return_path
        Return the state at every entry of ``times``.

    Returns
    -------
    torch.Tensor
        ``(n, d)``, or ``(len(times), n, d)`` with ``return_path=True``.

    Examples
    --------
    >>> import torch
    >>> from bioflow.core.solvers.sde import sde_integrate
    >>> zero = lambda t, x: torch.zeros_like(x)
    >>> x = sde_integrate(zero, zero, torch.zeros(20000, 1), [0.0, 1.0], g=1.0, steps=10,
    ...                   generator=torch.Generator().manual_seed(0))
    >>> round(float(x.var()), 1)  # Brownian motion: variance g^2 t
    1.0
    """
    if g < 0:
        raise ValueError(f"the diffusion g must be >= 0, got {g}")
    if steps < 1:
        raise ValueError(f"`steps` must be >= 1, got {steps}")
    t = torch.as_tensor(times, dtype=x0.dtype, device=x0.device).flatten()
    if t.numel() < 2:
        raise ValueError("`times` needs at least two entries")
    d = t[1:] - t[:-1]
    if not (bool((d > 0).all()) or bool((d < 0).all())):
        raise ValueError(f"`times` must be strictly monotone, got {t.tolist()}")
    forward = bool(d[0] > 0)
    sign = 1.0 if forward else -1.0
    span = float((t[-1] - t[0]).abs())
    x = x0
    out = [x0]
    for k in range(t.numel() - 1):
        seg = float((t[k + 1] - t[k]).abs())
        n_seg = max(1, round(steps * seg / span))
        h = (t[k + 1] - t[k]) / n_seg
        for i in range(n_seg):
            tk = t[k] + i * h
            deterministic = g == 0 or (
                ode_after is not None
                and (float(tk) >= ode_after if forward else float(tk) <= ode_after)
            )
            v = velocity(tk, x)
            if deterministic:
                x = x + h * v
                continue
            drift = v + sign * 0.5 * g**2 * score(tk, x)
            z = torch.randn(x.shape, generator=generator, dtype=x.dtype)
            x = x + h * drift + g * torch.sqrt(h.abs()) * z.to(x.device)
        out.append(x)
    return torch.stack(out) if return_path else x
