"""Affine conditional paths between paired points (I-CFM / OT-CFM / SB-CFM).

All paths are parameterised by the fraction ``s`` in [0, 1] of an interval
``[t0, t1]`` in absolute time.  The regression target is the velocity in absolute time,
``d x / d t = (d x / d s) / (t1 - t0)``, so a network trained on several consecutive
intervals sees one consistent clock.
"""

from __future__ import annotations

import torch
from torch import Tensor

from bioflow.core.paths.base import PathSample, ProbabilityPath


def _expand(v: Tensor, like: Tensor) -> Tensor:
    """Reshape a per-sample vector ``(n,)`` to broadcast against ``like`` ``(n, ...)``."""
    return v.reshape(-1, *([1] * (like.dim() - 1)))


def _as_time(value: float | Tensor, n: int, ref: Tensor) -> Tensor:
    t = torch.as_tensor(value, dtype=ref.dtype, device=ref.device)
    if t.dim() == 0:
        t = t.expand(n)
    if t.shape != (n,):
        raise ValueError(f"time must be a scalar or have shape ({n},), got {tuple(t.shape)}")
    return t


class AffinePath(ProbabilityPath):
    """Paths in ``R^d`` between paired points ``x0`` and ``x1`` over an absolute interval.

    Subclasses implement :meth:`sample_fraction` for the fraction ``s`` in [0, 1];
    :meth:`sample` (the :class:`~bioflow.core.paths.base.ProbabilityPath` interface, its
    ``t`` being that fraction) converts to the absolute interval ``[t0, t1]``.
    """

    sigma: float = 0.0

    def sample_fraction(
        self, x0: Tensor, x1: Tensor, s: Tensor, noise: Tensor | None = None
    ) -> PathSample:
        raise NotImplementedError

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
        """Draw ``x_t`` and the target velocity for pairs ``(x0, x1)``.

        Parameters
        ----------
        x0, x1
            Paired start and end points, shape ``(n, *dims)``.
        s
            Interval fractions, shape ``(n,)``; drawn from U(0, 1) when ``None``.
        t0, t1
            Absolute start and end time of the interval: scalars or shape ``(n,)``.
        noise
            Standard normal noise of shape ``(n, *dims)``; drawn when ``None`` and the
            path has ``sigma > 0``.
        generator
            Torch generator for ``s`` and ``noise``.

        Returns
        -------
        PathSample
            With ``u_t`` in absolute time (divided by ``t1 - t0``).

        Examples
        --------
        >>> import torch
        >>> from bioflow.core import LinearPath
        >>> x0, x1 = torch.zeros(4, 2), torch.ones(4, 2)
        >>> ps = LinearPath().sample(x0, x1, torch.full((4,), 0.5), t0=0.0, t1=2.0)
        >>> ps.x_t[0].tolist(), ps.u_t[0].tolist()
        ([0.5, 0.5], [0.5, 0.5])
        """
        if x0.shape != x1.shape:
            raise ValueError(
                f"x0 and x1 must have the same shape, got {tuple(x0.shape)} and {tuple(x1.shape)}"
            )
        n = x0.shape[0]
        if s is None:
            s = torch.rand(n, generator=generator, dtype=x0.dtype, device=x0.device)
        if noise is None and self.sigma > 0:
            noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
        t0 = _as_time(t0, n, x0)
        t1 = _as_time(t1, n, x0)
        dt = t1 - t0
        if dt.device.type == "cpu":
            if torch.any(dt == 0):
                raise ValueError("t1 - t0 must be non-zero for every pair")
        else:  # checked on the device, without a host sync inside the training step
            torch._assert_async(torch.all(dt != 0), "t1 - t0 must be non-zero for every pair")
        ps = self.sample_fraction(x0, x1, s, noise)
        ps.u_t = ps.u_t / _expand(dt, x0)
        ps.t = t0 + s * dt
        return ps


class LinearPath(AffinePath):
    """Straight line ``x_s = (1 - s) x0 + s x1 + sigma * eps`` (I-CFM, OT-CFM).

    Parameters
    ----------
    sigma
        Constant noise level around the line (0 gives a deterministic path).
    """

    def __init__(self, sigma: float = 0.0) -> None:
        if sigma < 0:
            raise ValueError(f"sigma must be >= 0, got {sigma}")
        self.sigma = float(sigma)

    def sample_fraction(
        self, x0: Tensor, x1: Tensor, s: Tensor, noise: Tensor | None = None
    ) -> PathSample:
        se = _expand(s, x0)
        x_t = (1 - se) * x0 + se * x1
        if self.sigma > 0 and noise is not None:
            x_t = x_t + self.sigma * noise
        return PathSample(x_t=x_t, u_t=x1 - x0, t=s, s=s, noise=noise)

    def __repr__(self) -> str:
        return f"LinearPath(sigma={self.sigma})"


class BrownianBridgePath(AffinePath):
    """Brownian bridge ``x_s = (1-s) x0 + s x1 + sigma sqrt(s(1-s)) eps`` (SB-CFM).

    The conditional velocity is
    ``u = x1 - x0 + (1 - 2s) / (2 s (1 - s)) (x_s - mu_s)``, written here as
    ``x1 - x0 + sigma (1 - 2s) / (2 sqrt(s(1-s))) eps`` which is the same quantity without
    the division of two small numbers near the ends.  ``s`` is clipped to
    ``[s_min, 1 - s_min]`` because the velocity is singular at the end points.

    Parameters
    ----------
    sigma
        Diffusion scale of the bridge; the matching entropic OT uses ``reg = 2 sigma**2``.
    s_min
        Clipping of the interval fraction away from 0 and 1.
    """

    def __init__(self, sigma: float = 1.0, s_min: float = 1e-4) -> None:
        if sigma <= 0:
            raise ValueError(f"sigma must be > 0 for a Brownian bridge, got {sigma}")
        self.sigma = float(sigma)
        self.s_min = float(s_min)

    def sample_fraction(
        self, x0: Tensor, x1: Tensor, s: Tensor, noise: Tensor | None = None
    ) -> PathSample:
        s = s.clamp(self.s_min, 1 - self.s_min)
        se = _expand(s, x0)
        if noise is None:
            noise = torch.randn_like(x0)
        std = self.sigma * torch.sqrt(se * (1 - se))
        x_t = (1 - se) * x0 + se * x1 + std * noise
        u_t = x1 - x0 + self.sigma * (1 - 2 * se) / (2 * torch.sqrt(se * (1 - se))) * noise
        score = -noise / std
        return PathSample(x_t=x_t, u_t=u_t, t=s, s=s, noise=noise, score=score)

    def __repr__(self) -> str:
        return f"BrownianBridgePath(sigma={self.sigma})"
