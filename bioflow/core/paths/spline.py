"""Natural cubic splines through whole trajectories (multi-marginal interpolant).

Given the positions ``y_k`` of ``n`` trajectories at knots ``t_0 < ... < t_K`` (for
example cells chained across time points by
:func:`~bioflow.core.couplings.trajectory.chain_couplings`), the natural cubic spline is
the twice continuously differentiable piecewise cubic through them with zero second
derivative at both ends.  On ``[t_k, t_{k+1}]`` with ``h = t_{k+1} - t_k``,
``a = (t_{k+1} - t) / h`` and ``b = 1 - a``:

    S(t)  = a y_k + b y_{k+1} + ((a^3 - a) M_k + (b^3 - b) M_{k+1}) h^2 / 6
    S'(t) = (y_{k+1} - y_k) / h + h / 6 ((1 - 3 a^2) M_k + (3 b^2 - 1) M_{k+1})

where the second derivatives ``M`` solve the tridiagonal system
``h_{k-1} M_{k-1} + 2 (h_{k-1} + h_k) M_k + h_k M_{k+1}
= 6 ((y_{k+1} - y_k) / h_k - (y_k - y_{k-1}) / h_{k-1})`` with ``M_0 = M_K = 0``.
With two knots it is the straight line of the linear path.
"""

from __future__ import annotations

import torch
from torch import Tensor

from bioflow.core.paths.affine import PathSample


def _check(knots: Tensor, y: Tensor) -> None:
    if knots.dim() != 1 or knots.numel() < 2:
        raise ValueError(f"knots must have shape (K,) with K >= 2, got {tuple(knots.shape)}")
    if y.dim() < 2 or y.shape[0] != knots.numel():
        raise ValueError(
            f"y must have shape (K, n, ...) with K = {knots.numel()}, got {tuple(y.shape)}"
        )
    if not bool((knots[1:] > knots[:-1]).all()):
        raise ValueError(f"knots must be strictly increasing, got {knots.tolist()}")


def natural_spline_second_derivatives(knots: Tensor, y: Tensor) -> Tensor:
    """Second derivatives ``M`` ``(K, n, ...)`` of the natural cubic spline through ``y``.

    Parameters
    ----------
    knots
        Strictly increasing times ``(K,)``.
    y
        Values at the knots ``(K, n, ...)``.

    Returns
    -------
    torch.Tensor
        ``(K, n, ...)``, zero at both ends.
    """
    _check(knots, y)
    k = knots.numel()
    m = torch.zeros_like(y)
    if k == 2:
        return m
    h = (knots[1:] - knots[:-1]).to(y.dtype)
    slopes = (y[1:] - y[:-1]) / h.reshape(-1, *([1] * (y.dim() - 1)))
    rhs = 6.0 * (slopes[1:] - slopes[:-1])  # (K-2, n, ...)
    a = torch.zeros(k - 2, k - 2, dtype=y.dtype, device=y.device)
    idx = torch.arange(k - 2, device=y.device)
    a[idx, idx] = 2.0 * (h[:-1] + h[1:])
    a[idx[1:], idx[:-1]] = h[1:-1]
    a[idx[:-1], idx[1:]] = h[1:-1]
    sol = torch.linalg.solve(a, rhs.reshape(k - 2, -1))
    m[1:-1] = sol.reshape(rhs.shape)
    return m


def natural_spline_eval(knots: Tensor, y: Tensor, m: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
    """Value and time derivative of each trajectory's spline at its own time.

    Parameters
    ----------
    knots
        ``(K,)`` knots.
    y, m
        ``(K, n, d)`` values and second derivatives at the knots.
    t
        ``(n,)`` one time per trajectory, inside ``[knots[0], knots[-1]]``.

    Returns
    -------
    (x, dx_dt)
        Both ``(n, d)``.
    """
    n = y.shape[1]
    seg = torch.searchsorted(knots, t.contiguous(), right=True) - 1
    seg = seg.clamp(0, knots.numel() - 2)
    rows = torch.arange(n, device=y.device)
    tk, tk1 = knots[seg], knots[seg + 1]
    h = (tk1 - tk).to(y.dtype)[:, None]
    a = ((tk1 - t).to(y.dtype)[:, None]) / h
    b = 1 - a
    y0, y1, m0, m1 = y[seg, rows], y[seg + 1, rows], m[seg, rows], m[seg + 1, rows]
    x = a * y0 + b * y1 + ((a**3 - a) * m0 + (b**3 - b) * m1) * h**2 / 6
    dx = (y1 - y0) / h + h / 6 * ((1 - 3 * a**2) * m0 + (3 * b**2 - 1) * m1)
    return x, dx


class SplinePath:
    """Multi-marginal path: natural cubic spline through chained points, plus noise.

    ``x_t = S(t) + sigma * eps`` and the target velocity is ``S'(t)`` in absolute time.
    Each draw picks an interval uniformly and a time uniformly inside it, so every interval
    gets the same share of the loss, as in the interval-wise paths.

    Parameters
    ----------
    sigma
        Constant noise around the spline.

    Examples
    --------
    >>> import torch
    >>> from bioflow.core.paths.spline import SplinePath
    >>> knots = torch.tensor([0.0, 1.0, 2.0])
    >>> y = torch.tensor([[[0.0]], [[1.0]], [[0.0]]])  # one trajectory up and down
    >>> ps = SplinePath().sample(y.expand(3, 4, 1), knots)
    >>> ps.x_t.shape, ps.u_t.shape
    (torch.Size([4, 1]), torch.Size([4, 1]))
    """

    def __init__(self, sigma: float = 0.0) -> None:
        if sigma < 0:
            raise ValueError(f"sigma must be >= 0, got {sigma}")
        self.sigma = float(sigma)

    def sample(
        self, y: Tensor, knots: Tensor, *, generator: torch.Generator | None = None
    ) -> PathSample:
        """Draw one point and target per trajectory.

        Parameters
        ----------
        y
            ``(K, n, d)`` chained positions of ``n`` trajectories at the ``K`` knots.
        knots
            ``(K,)`` strictly increasing absolute times.
        generator
            Torch generator for the times and noise.

        Returns
        -------
        PathSample
            ``x_t``, ``u_t`` ``(n, d)``, absolute ``t`` ``(n,)`` and fraction ``s`` of the
            whole span.
        """
        knots = knots.to(y.dtype)
        m = natural_spline_second_derivatives(knots, y)
        n = y.shape[1]
        seg = torch.randint(knots.numel() - 1, (n,), generator=generator).to(y.device)
        frac = torch.rand(n, generator=generator, dtype=y.dtype).to(y.device)
        t = knots[seg] + frac * (knots[seg + 1] - knots[seg])
        x, dx = natural_spline_eval(knots, y, m, t)
        noise = None
        if self.sigma > 0:
            noise = torch.randn(x.shape, generator=generator, dtype=y.dtype).to(y.device)
            x = x + self.sigma * noise
        s = (t - knots[0]) / (knots[-1] - knots[0])
        return PathSample(x_t=x, u_t=dx, t=t, s=s, noise=noise)

    def __repr__(self) -> str:
        return f"SplinePath(sigma={self.sigma})"
