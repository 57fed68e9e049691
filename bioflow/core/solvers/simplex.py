"""Samplers on the probability simplex: projected Euler steps and predict-and-renoise."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from bioflow.core.paths.simplex import sample_gumbel
from bioflow.core.solvers.categorical import sample_categorical


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


def renoise_sample(
    logits_fn: Callable[[Tensor, Tensor], Tensor],
    path,
    x0: Tensor,
    *,
    steps: int = 100,
    draw: Callable[[Tensor], Tensor] | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Predict-and-renoise sampler on the Gumbel-softmax path; returns one-hot letters.

    At each of ``steps`` times ``t_i = i / steps`` the clean letters ``k`` are drawn from
    the predicted law ``softmax(logits_fn(t_i, x))`` (or by ``draw``), and ``x`` is redrawn
    on the path at ``t_{i+1}`` from those letters with fresh Gumbel noise.  Every position
    is drawn independently from its own predicted law, so this is not a joint draw: it
    keeps per-position letter laws but can lose the dependence between positions
    (``benchmarks/sequences.py --skip-samplers none`` measures it).  For joint structure use masked
    discrete flow matching (the default method of ``tl.fit_sequence_flow``) or the GSFM ODE.

    Parameters
    ----------
    logits_fn
        ``f(t, x)``: clean-letter logits ``(m, L, K)`` at times ``t`` ``(m,)`` and points
        ``x`` ``(m, L, K)``.
    path
        A :class:`~bioflow.core.paths.GumbelSoftmaxPath` (``interpolate(k, K, t, gumbel)``).
    x0
        Start points ``(m, L, K)`` (``path.prior_sample``).
    steps
        Number of steps (>= 1).
    draw
        Letters ``(m, L)`` from logits ``(m, L, K)``, e.g. a guided draw
        (:meth:`~bioflow.core.guidance.STGuidance.draw`); default: a categorical draw from
        the softmax with ``generator``.
    generator
        Torch generator on ``x0``'s device.

    Returns
    -------
    torch.Tensor
        One-hot letters ``(m, L, K)`` of the last step's draw, dtype of ``x0``.

    Examples
    --------
    >>> import torch
    >>> from bioflow.core.paths import GumbelSoftmaxPath
    >>> path = GumbelSoftmaxPath()
    >>> x0 = path.prior_sample(2, 3, 4)
    >>> always_c = lambda t, x: torch.tensor([0.0, 0.0, 50.0, 0.0]).expand_as(x)
    >>> renoise_sample(always_c, path, x0, steps=3).argmax(-1).tolist()
    [[2, 2, 2], [2, 2, 2]]
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if x0.dim() != 3:
        raise ValueError(f"x0 must have shape (m, L, K), got {tuple(x0.shape)}")
    m, K = x0.shape[0], x0.shape[-1]
    x = x0
    ts = torch.linspace(0, 1, steps + 1, device=x0.device)
    for i in range(steps):
        logits = logits_fn(ts[i].expand(m), x)
        if draw is not None:
            k = draw(logits)
        else:
            k = sample_categorical(torch.softmax(logits, -1), generator=generator)
        if i + 1 < steps:
            g = sample_gumbel(x.shape, generator=generator, device=x0.device)
            x = path.interpolate(k, K, ts[i + 1].expand(m), g)
    return torch.nn.functional.one_hot(k, K).to(x)


def gumbel_softmax_ode(
    posterior: Callable[[Tensor, Tensor], Tensor],
    path,
    x0: Tensor,
    *,
    steps: int = 100,
    return_path: bool = False,
) -> Tensor:
    """Integrate the Gumbel-Softmax flow ``dx/dt = v_t(x)`` from ``t = 0`` to ``1``.

    ``v_t`` is the marginal velocity of
    :class:`~bioflow.core.paths.simplex.GumbelSoftmaxPath`,
    ``(rho'/c) x * (p - <p, x>) + lam x * (log x - <x, log x>)`` with ``p = posterior(t, x)``.
    In the noisy-logit coordinates ``z = c(t) log x`` (up to a shift per position, which
    ``x`` does not see) this ODE is ``dz/dt = rho'(t) p``: the Gumbel-noise term is what
    keeps ``z`` fixed while the temperature falls.  Each step therefore is
    ``z <- z + (rho(t_{i+1}) - rho(t_i)) p(t_i, x_i)``, ``x = softmax(z / c)``: an Euler step
    on the clock ``rho``, exact whenever ``p`` is constant over the step, and stable at any
    temperature (plain Euler in ``x`` is stiff near ``t = 1``, where ``rho'/c`` is large).

    Parameters
    ----------
    posterior
        ``p(t, x)``: clean-letter law ``(n, L, K)`` at a 0-d time ``t`` and points ``x``
        ``(n, L, K)`` (a network's softmax, or the exact posterior).
    path
        The :class:`~bioflow.core.paths.simplex.GumbelSoftmaxPath`.
    x0
        Start points ``(n, L, K)``, e.g. ``path.prior_sample``.
    steps
        Number of steps (>= 1) on a uniform time grid.
    return_path
        Return all ``steps + 1`` states, shape ``(steps + 1, n, L, K)``.

    Returns
    -------
    torch.Tensor
        ``x_1`` ``(n, L, K)`` (within ``path.vertex_error`` of a vertex), or the path.

    Examples
    --------
    >>> import torch
    >>> from bioflow.core.paths.simplex import GumbelSoftmaxPath
    >>> path = GumbelSoftmaxPath()
    >>> x0 = path.prior_sample(5, 3, 4, generator=torch.Generator().manual_seed(0))
    >>> p = torch.tensor([1.0, 0.0, 0.0, 0.0])  # every letter is "0"
    >>> x1 = gumbel_softmax_ode(lambda t, x: p.expand_as(x), path, x0, steps=10)
    >>> x1.argmax(-1).unique().tolist(), bool(x1.max(-1).values.min() > 0.999)
    ([0], True)
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if x0.dim() != 3:
        raise ValueError(f"x0 must have shape (n, L, K), got {tuple(x0.shape)}")
    K = x0.shape[-1]
    ts = torch.linspace(0.0, 1.0, steps + 1, device=x0.device)
    rho = path.rho(ts.cpu(), K).to(x0)
    z = path.logits_from_x(x0, ts[0])
    x = x0
    out = [x]
    for i in range(steps):
        p = posterior(ts[i], x)
        z = z + (rho[i + 1] - rho[i]) * p
        x = torch.softmax(z / path.scale(ts[i + 1].cpu()).to(z), dim=-1)
        if return_path:
            out.append(x)
    return torch.stack(out) if return_path else x
