"""Straight-through Gumbel-softmax guidance (STGFlow, Tang et al. 2025)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from bioflow.core.paths.simplex import sample_gumbel, tangent_projection
from bioflow.core.solvers.categorical import sample_categorical


def straight_through_sample(
    x: Tensor, M: int, *, temperature: float = 1.0, generator=None, eps: float = 1e-12
) -> Tensor:
    """``M`` hard one-hot sequences per row of ``x`` with soft (Gumbel-softmax) gradients.

    Forward values are one-hot draws from the categorical ``x``; the backward pass uses the
    gradient of ``softmax((log x + g) / temperature)``.

    Parameters
    ----------
    x
        Points on the simplex, ``(n, L, K)``.
    M
        Samples per row.

    Returns
    -------
    torch.Tensor
        ``(M, n, L, K)``.

    Examples
    --------
    >>> import torch
    >>> y = straight_through_sample(torch.full((2, 3, 4), 0.25), 5)
    >>> y.shape, bool((y.sum(-1) == 1).all())
    (torch.Size([5, 2, 3, 4]), True)
    """
    logits = torch.log(x.clamp_min(eps)).unsqueeze(0)
    g = sample_gumbel((M, *x.shape), generator=generator, device=x.device, dtype=x.dtype)
    soft = torch.softmax((logits + g) / temperature, dim=-1)
    hard = torch.nn.functional.one_hot(soft.argmax(-1), x.shape[-1]).to(x)
    return hard - soft.detach() + soft


@dataclass
class STGradient:
    """Reward gradients of ``M`` straight-through samples, averaged over the samples.

    Attributes
    ----------
    reward
        Rewards of the hard samples, shape ``(M, n)``.
    onehot
        Mean gradient with respect to the hard one-hot samples (the straight-through
        gradient), centred per position, shape ``(n, L, K)``.  Tilting clean-letter logits
        by ``gamma`` times it is the first-order form of ``p(x1) * exp(gamma * f(x1))``.
    simplex
        Mean gradient with respect to the categorical ``x`` the samples were drawn from,
        through the soft (Gumbel-softmax) relaxation, centred per position (the tangent
        space of the simplex), shape ``(n, L, K)``.
    """

    reward: Tensor
    onehot: Tensor
    simplex: Tensor


def straight_through_gradient(
    reward: Callable[[Tensor], Tensor],
    x: Tensor,
    n_samples: int,
    *,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
) -> STGradient:
    """Score ``n_samples`` hard sequences drawn from ``x`` and average their reward gradients.

    The one estimator behind both guided samplers: the Euler sampler adds
    ``STGradient.simplex`` to its velocity, the predict-and-renoise sampler tilts the
    clean-letter logits by ``STGradient.onehot``.

    Parameters
    ----------
    reward
        Maps one-hot sequences ``(m, L, K)`` to rewards ``(m,)``; differentiable.
    x
        Categorical laws per position (points on the simplex), ``(n, L, K)``.
    n_samples
        ``M``, hard sequences drawn per row of ``x``.
    temperature
        Temperature of the soft backward pass.
    generator
        Random generator of the draws.

    Returns
    -------
    STGradient
        ``reward`` ``(M, n)``; ``onehot`` and ``simplex`` ``(n, L, K)``, zero-sum over ``K``.

    Examples
    --------
    >>> import torch
    >>> st = straight_through_gradient(lambda y: y[..., 0].sum(-1), torch.full((2, 3, 4), 0.25), 4)
    >>> st.onehot[0, 0]
    tensor([ 0.7500, -0.2500, -0.2500, -0.2500])
    """
    if n_samples < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}")
    if x.dim() != 3:
        raise ValueError(f"x must have shape (n, L, K), got {tuple(x.shape)}")
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        y = straight_through_sample(xg, n_samples, temperature=temperature, generator=generator)
        M, n = y.shape[:2]
        r = reward(y.reshape(M * n, *y.shape[2:]))
        if r.shape != (M * n,):
            raise ValueError(f"reward must map (m, L, K) to (m,), got shape {tuple(r.shape)}")
        bad = ~torch.isfinite(r.detach())
        if bool(bad.any()):
            raise ValueError(
                f"the guidance reward returned {int(bad.sum())} non-finite values (NaN/inf) "
                f"of {r.numel()}; fix the reward function"
            )
        r = r.reshape(M, n)
        # one backward pass gives both: d r / d y (straight-through) and d r / d x (soft);
        # r.mean(0) already carries the 1 / M, so the per-sample gradients are summed
        g_y, g_x = torch.autograd.grad(r.mean(0).sum(), (y, xg))
    return STGradient(r.detach(), tangent_projection(g_y.sum(0)), tangent_projection(g_x))


class STGuidance:
    """Straight-through guidance of a reward on hard sequences drawn from ``x_t`` or ``p_theta``.

    Used three ways, all on :func:`straight_through_gradient`: ``__call__`` adds
    ``scale`` times the gradient to a velocity (Euler sampler); :meth:`tilt` shifts
    clean-letter logits; :meth:`draw` samples letters from the tilted law with an
    importance correction (predict-and-renoise sampler).

    Parameters
    ----------
    reward
        Callable mapping one-hot sequences ``(m, L, K)`` to rewards ``(m,)`` (e.g. a
        classifier's log-probability of the wanted class, or a regressor's output).
    n_samples
        ``M``, hard sequences per step.
    temperature
        Temperature of the soft backward pass.
    scale
        Guidance strength ``gamma``.

    Examples
    --------
    >>> import torch
    >>> guide = STGuidance(lambda y: y[..., 0].sum(-1), n_samples=4)
    >>> g = guide.gradient(torch.full((2, 3, 4), 0.25))
    >>> g.shape, bool(torch.allclose(g.sum(-1), torch.zeros(2, 3), atol=1e-5))
    (torch.Size([2, 3, 4]), True)
    >>> guide.tilt(torch.zeros(1, 1, 4))
    tensor([[[ 0.7500, -0.2500, -0.2500, -0.2500]]])
    >>> guide.draw(torch.zeros(3, 5, 4)).shape
    torch.Size([3, 5])
    """

    def __init__(
        self,
        reward: Callable[[Tensor], Tensor],
        *,
        n_samples: int = 8,
        temperature: float = 1.0,
        scale: float = 1.0,
        generator: torch.Generator | None = None,
    ):
        if n_samples < 1:
            raise ValueError(f"n_samples must be >= 1, got {n_samples}")
        if not callable(reward):
            raise ValueError(f"reward must be callable, got {type(reward).__name__}")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.reward, self.n_samples = reward, n_samples
        self.temperature, self.scale, self.generator = temperature, scale, generator

    def _estimate(self, x: Tensor) -> STGradient:
        return straight_through_gradient(
            self.reward,
            x,
            self.n_samples,
            temperature=self.temperature,
            generator=self.generator,
        )

    def gradient(self, x: Tensor) -> Tensor:
        """Mean gradient of the reward w.r.t. ``x`` ``(n, L, K)``, projected to zero sum."""
        return self._estimate(x).simplex

    def tilt(self, logits: Tensor) -> Tensor:
        """Clean-letter logits ``(n, L, K)`` tilted toward the reward.

        Draws the hard samples from ``softmax(logits)`` and returns ``logits + scale *``
        ``STGradient.onehot``: for a reward linear in the one-hot letters this is
        exactly ``p(x1) exp(scale * f(x1))``; otherwise its first-order form around the
        samples.
        """
        return logits + self.scale * self._estimate(torch.softmax(logits, -1)).onehot

    def draw(self, logits: Tensor) -> Tensor:
        """Letters ``(n, L)`` from ``softmax(logits) * exp(scale * reward)``, approximately.

        Proposes ``n_samples`` sequences per row from the first-order tilt :meth:`tilt` and
        keeps one, chosen with importance weights ``exp(scale * (f(k) - <g, k>))``: the
        target over the proposal, ``p(k) exp(scale f(k)) / q(k)``, up to a constant.  The
        weights undo what the linearisation gets wrong (a tilt that spreads the reward's
        favourite letters over every window where a sample might place them), so the draw
        tends to the tilted law as ``n_samples`` grows.

        Parameters
        ----------
        logits
            Clean-letter logits ``(n, L, K)`` of a factorised law.

        Returns
        -------
        torch.Tensor
            Letter indices ``(n, L)`` (long).
        """
        g = self._estimate(torch.softmax(logits, -1)).onehot
        q = torch.softmax(logits + self.scale * g, -1)
        n, L, K = q.shape
        cand = sample_categorical(q, n_samples=self.n_samples, generator=self.generator)
        y = torch.nn.functional.one_hot(cand, K).to(q)
        with torch.no_grad():
            f = self.reward(y.reshape(-1, L, K)).reshape(self.n_samples, n)
        logw = self.scale * (f - (y * g).sum((-1, -2)))  # (M, n)
        pick = torch.multinomial(torch.softmax(logw.T, -1), 1, generator=self.generator)
        return cand.gather(0, pick.T.unsqueeze(-1).expand(1, n, L)).squeeze(0)

    def __call__(self, velocity: Callable[[Tensor, Tensor], Tensor]):
        """Wrap ``velocity(t, x)`` into the guided field ``v + scale * gradient``."""

        def guided(t: Tensor, x: Tensor) -> Tensor:
            return velocity(t, x) + self.scale * self.gradient(x)

        return guided
