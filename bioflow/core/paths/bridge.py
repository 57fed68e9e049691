"""Brownian bridge with a diffusion fixed on the absolute clock (SF2M / SB-CFM over intervals).

For an interval ``[t0, t1]`` of length ``dt`` and a reference Brownian motion of diffusion
``g`` per unit of absolute time, the bridge pinned at ``x0`` and ``x1`` is

    x_t = (1 - s) x0 + s x1 + g sqrt(dt) sqrt(s (1 - s)) eps,   s = (t - t0) / dt,

so its variance ``g^2 dt s (1 - s)`` grows with the length of the interval, and one
stochastic differential equation ``dx = f dt + g dW`` describes every interval.  (With the
fraction-scaled :class:`~bioflow.core.paths.BrownianBridgePath` an interval twice as long
would get the same noise, which no single SDE produces.)
"""

from __future__ import annotations

import torch
from torch import Tensor

from bioflow.core.paths.affine import PathSample, ProbabilityPath, _as_time, _expand


class DiffusionBridgePath(ProbabilityPath):
    """Brownian bridge whose diffusion ``g`` is per unit of absolute time.

    Each draw carries the conditional velocity ``u`` (the probability-flow velocity of the
    bridge, in absolute time) and the conditional score
    ``grad_x log p_t(x_t | x0, x1) = -eps / std`` with ``std = g sqrt(dt s (1 - s))``.

    Parameters
    ----------
    g
        Diffusion of the reference Brownian motion per unit time (> 0).  The matching
        entropic OT between the ends of an interval of length ``dt`` uses
        ``reg = 2 g**2 dt`` (:meth:`entropic_reg`).
    s_min
        The interval fraction is clipped to ``[s_min, 1 - s_min]`` (the velocity is
        singular at the ends).

    Examples
    --------
    >>> import torch
    >>> from bioflow.core.paths.bridge import DiffusionBridgePath
    >>> p = DiffusionBridgePath(g=0.5)
    >>> ps = p.sample(torch.zeros(3, 2), torch.ones(3, 2), torch.full((3,), 0.5), t0=0.0,
    ...               t1=4.0, noise=torch.zeros(3, 2))
    >>> ps.x_t[0].tolist(), ps.u_t[0].tolist(), float(ps.std[0])
    ([0.5, 0.5], [0.25, 0.25], 0.5)
    """

    def __init__(self, g: float = 0.5, s_min: float = 1e-3) -> None:
        if not g > 0:
            raise ValueError(f"the diffusion g must be > 0, got {g}")
        if not 0 < s_min < 0.5:
            raise ValueError(f"s_min must lie in (0, 0.5), got {s_min}")
        self.g = float(g)
        self.sigma = float(g)
        self.s_min = float(s_min)

    def entropic_reg(self, dt: float) -> float:
        """Entropic regularisation ``2 g^2 |dt|`` of the static bridge over an interval."""
        return 2.0 * self.g**2 * abs(float(dt))

    def sample(
        self,
        x0: Tensor,
        x1: Tensor,
        s: Tensor | None = None,
        *,
        t0: float | Tensor = 0.0,
        t1: float | Tensor = 1.0,
        noise: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> PathSample:
        """Draw ``x_t`` ``(n, d)``, its velocity and score; see the class docstring.

        The returned :class:`PathSample` has an extra attribute ``std`` ``(n,)``: the
        bridge's standard deviation at each draw (the weight of the score loss).
        """
        if x0.shape != x1.shape:
            raise ValueError(
                f"x0 and x1 must have the same shape, got {tuple(x0.shape)} and {tuple(x1.shape)}"
            )
        n = x0.shape[0]
        if s is None:
            s = torch.rand(n, generator=generator, dtype=x0.dtype, device=x0.device)
        if noise is None:
            noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
        t0, t1 = _as_time(t0, n, x0), _as_time(t1, n, x0)
        dt = t1 - t0
        if torch.any(dt <= 0):
            raise ValueError("a diffusion bridge needs t1 > t0 for every pair")
        s = s.clamp(self.s_min, 1 - self.s_min)
        se, dte = _expand(s, x0), _expand(dt, x0)
        std = self.g * torch.sqrt(dte * se * (1 - se))
        x_t = (1 - se) * x0 + se * x1 + std * noise
        # d/dt of the mean plus d std/dt * eps, both in absolute time.
        du = self.g * (1 - 2 * se) / (2 * torch.sqrt(dte * se * (1 - se)))
        u_t = (x1 - x0) / dte + du * noise
        ps = PathSample(x_t=x_t, u_t=u_t, t=t0 + s * dt, s=s, noise=noise, score=-noise / std)
        ps.std = std.reshape(n, -1)[:, 0]
        return ps

    def __repr__(self) -> str:
        return f"DiffusionBridgePath(g={self.g})"
