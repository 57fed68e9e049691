"""Gumbel-Softmax probability path on the simplex (Tang et al. 2025).

Each position of a sequence over ``K`` letters lives on the simplex ``Delta^{K-1}``.  For a
clean letter ``k`` the interpolant is ``x_t = softmax((e_k + g / beta) / tau(t))`` with
``g ~ Gumbel(0, 1)`` and the temperature ``tau(t) = tau_max * exp(-lam * t)``; as ``tau``
falls, ``x_t`` sharpens toward the vertex of ``argmax(e_k + g / beta)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from bioflow.core.paths.base import PathSample, ProbabilityPath


@dataclass
class SimplexPathSample(PathSample):
    """A draw from the Gumbel-Softmax path (a :class:`~bioflow.core.paths.base.PathSample`).

    Attributes
    ----------
    x_t
        Points on the simplex, shape ``(n, L, K)``.
    u_t
        Conditional velocity ``(lam / tau) x_k (e_k - x_t)``, shape ``(n, L, K)``.
    t
        Times, shape ``(n,)``.
    noise
        The Gumbel noise ``(n, L, K)`` behind ``x_t``.
    tau
        Temperatures ``tau(t)``, shape ``(n,)``.
    target
        Clean letters, shape ``(n, L)`` (long).
    """

    tau: Tensor | None = None
    target: Tensor | None = None


def sample_gumbel(shape, *, generator=None, device=None, dtype=torch.float32) -> Tensor:
    """Standard Gumbel noise ``-log(-log U)`` of ``shape``.

    Examples
    --------
    >>> sample_gumbel((2, 3)).shape
    torch.Size([2, 3])
    """
    u = torch.rand(shape, generator=generator, device=device, dtype=dtype)
    eps = torch.finfo(dtype).eps
    u = u.clamp(eps, 1.0 - eps)
    return -torch.log(-torch.log(u))


def tangent_projection(v: Tensor) -> Tensor:
    """Project ``v`` ``(..., K)`` onto the tangent space of the simplex (zero sum over K).

    Examples
    --------
    >>> import torch
    >>> tangent_projection(torch.tensor([[1.0, 2.0, 3.0]])).sum().item()
    0.0
    """
    return v - v.mean(dim=-1, keepdim=True)


class GumbelSoftmaxPath(ProbabilityPath):
    """The Gumbel-Softmax interpolant toward clean one-hot letters.

    Parameters
    ----------
    tau_max
        Temperature at ``t = 0``.
    lam
        Decay rate: ``tau(t) = tau_max * exp(-lam * t)``.
    beta
        Inverse scale of the Gumbel noise.

    Examples
    --------
    >>> import torch
    >>> path = GumbelSoftmaxPath()
    >>> ps = path.sample(None, torch.tensor([[0, 1, 2, 3]]), K=4)
    >>> ps.x_t.shape, bool(torch.allclose(ps.u_t.sum(-1), torch.zeros(1, 4), atol=1e-6))
    (torch.Size([1, 4, 4]), True)
    """

    def __init__(self, tau_max: float = 10.0, lam: float = 3.0, beta: float = 2.0):
        if tau_max <= 0 or lam <= 0 or beta <= 0:
            raise ValueError(f"tau_max, lam and beta must be > 0, got {tau_max}, {lam}, {beta}")
        self.tau_max, self.lam, self.beta = float(tau_max), float(lam), float(beta)

    def __repr__(self) -> str:
        return f"GumbelSoftmaxPath(tau_max={self.tau_max}, lam={self.lam}, beta={self.beta})"

    def tau(self, t: Tensor | float) -> Tensor:
        """Temperature ``tau_max * exp(-lam * t)`` (same shape as ``t``)."""
        t = torch.as_tensor(t, dtype=torch.float32)
        return self.tau_max * torch.exp(-self.lam * t)

    def interpolate(self, target: Tensor, K: int, t: Tensor, gumbel: Tensor) -> Tensor:
        """``softmax((e_k + g / beta) / tau(t))`` for letters ``target`` ``(n, L)``."""
        tau = self.tau(t).to(gumbel).reshape(-1, 1, 1)
        logits = F.one_hot(target, K).to(gumbel) + gumbel / self.beta
        return torch.softmax(logits / tau, dim=-1)

    def conditional_velocity(self, x: Tensor, target: Tensor, t: Tensor) -> Tensor:
        """``(lam / tau) x_k (e_k - x)`` for ``x`` ``(n, L, K)`` and letters ``(n, L)``."""
        K = x.shape[-1]
        rate = (self.lam / self.tau(t).to(x)).reshape(-1, 1, 1)
        e = F.one_hot(target, K).to(x)
        xk = x.gather(-1, target.unsqueeze(-1))
        return rate * xk * (e - x)

    def model_velocity(self, x: Tensor, p: Tensor, t: Tensor) -> Tensor:
        """Velocity ``v_i = (lam / tau) x_i (p_i - <p, x>)`` from a predicted clean law ``p``.

        It is the conditional velocity averaged over letters drawn from ``p``, and sums to
        zero over the alphabet.

        Parameters
        ----------
        x, p
            Shape ``(n, L, K)``; ``p`` on the simplex.
        t
            Scalar or ``(n,)``.
        """
        tau = self.tau(t).to(x)
        rate = (self.lam / tau).reshape(-1, 1, 1) if tau.dim() else self.lam / tau
        return rate * x * (p - (p * x).sum(-1, keepdim=True))

    def prior_sample(self, n: int, L: int, K: int, *, generator=None, device=None) -> Tensor:
        """Start points ``softmax(g / (beta * tau_max))``, shape ``(n, L, K)``."""
        g = sample_gumbel((n, L, K), generator=generator, device=device)
        return torch.softmax(g / (self.beta * self.tau_max), dim=-1)

    def sample(
        self,
        x0: Tensor | None,
        x1: Tensor,
        t: Tensor | float | None = None,
        *,
        K: int | None = None,
        generator: torch.Generator | None = None,
    ) -> SimplexPathSample:
        """Draw ``x_t`` and the conditional velocity toward the clean letters ``x1``.

        Parameters
        ----------
        x0
            Source noise: standard Gumbel draws ``(n, L, K)``, or ``None`` to draw them
            (after ``t``) with ``generator``.
        x1
            Clean letters ``(n, L)`` (long).
        t
            Times ``(n,)`` or a scalar; ``U(0, 1)`` draws when ``None``.
        K
            Alphabet size; needed when ``x0`` is ``None``, else ``x0.shape[-1]``.
        generator
            Torch generator of ``t`` and the noise.

        Returns
        -------
        SimplexPathSample
        """
        target = x1
        if target.dim() != 2:
            raise ValueError(f"x1 must hold letters of shape (n, L), got {tuple(target.shape)}")
        if x0 is not None:
            if x0.shape[:2] != target.shape or (K is not None and x0.shape[-1] != K):
                raise ValueError(
                    f"x0 must be Gumbel noise of shape (n, L, K) = "
                    f"{(*target.shape, K)}, got {tuple(x0.shape)}"
                )
            K = x0.shape[-1]
        if K is None or K < 2:
            raise ValueError(f"K must be the alphabet size (>= 2) when x0 is None, got {K}")
        n = target.shape[0]
        device = target.device
        if t is None:
            t = torch.rand(n, generator=generator, device=device)
        t = torch.as_tensor(t, dtype=torch.float32, device=device).expand(n).contiguous()
        g = (
            x0
            if x0 is not None
            else sample_gumbel((*target.shape, K), generator=generator, device=device)
        )
        x = self.interpolate(target, K, t, g)
        return SimplexPathSample(
            x_t=x,
            u_t=self.conditional_velocity(x, target, t),
            t=t,
            noise=g,
            tau=self.tau(t),
            target=target,
        )

    def log_odds_features(self, x: Tensor, t: Tensor, eps: float = 1e-12) -> Tensor:
        """``tau(t) * (log x - mean log x)``: the centred noisy logits ``e_k + g / beta``.

        A time-invariant view of ``x_t`` that networks learn from more easily.
        """
        tau = self.tau(t).to(x).reshape(-1, 1, 1)
        lx = torch.log(x.clamp_min(eps))
        return tau * (lx - lx.mean(-1, keepdim=True))

    def conditional_score(self, x: Tensor, target: Tensor, t: Tensor, eps: float = 1e-12) -> Tensor:
        """``x * grad_x log p_t(x | k)`` projected to the tangent space, shape ``(n, L, K)``.

        ``x_t`` given ``k`` follows a Concrete law with location ``alpha = exp(beta e_k)``
        and temperature ``c = beta * tau``; its log-density is
        ``-(c + 1) sum log x_i - K log sum_i alpha_i x_i^{-c} + const``.  The score is
        multiplied by ``x`` (a gradient in log-coordinates) so that it stays bounded.
        """
        K = x.shape[-1]
        c = (self.beta * self.tau(t).to(x)).reshape(-1, 1, 1)
        lx = torch.log(x.clamp_min(eps))
        log_alpha = self.beta * F.one_hot(target, K).to(x)
        w = torch.softmax(log_alpha - c * lx, dim=-1)  # alpha_i x_i^{-c} / sum
        s = -(c + 1) + K * c * w
        return tangent_projection(s)

    def score_from_probs(self, x: Tensor, p: Tensor, t: Tensor, eps: float = 1e-12) -> Tensor:
        """Marginal score ``sum_k p_k * conditional_score(x | k)`` under a letter law ``p``."""
        K = x.shape[-1]
        c = (self.beta * self.tau(t).to(x)).reshape(-1, 1, 1)
        lx = torch.log(x.clamp_min(eps))
        base = -c * lx  # (n, L, K)
        # w^(k)_i = exp(beta [i==k] + base_i) / Z_k ; Z_k = S + (e^beta - 1) exp(base_k)
        m = base.max(-1, keepdim=True).values
        eb = torch.exp(base - m)
        S = eb.sum(-1, keepdim=True)
        Zk = S + math.expm1(self.beta) * eb  # (n, L, K) indexed by k
        # sum_k p_k w^(k)_i = eb_i * [sum_k p_k / Z_k] + (e^beta - 1) eb_i p_i / Z_i
        w = eb * (p / Zk).sum(-1, keepdim=True) + math.expm1(self.beta) * eb * p / Zk
        s = -(c + 1) + K * c * w
        return tangent_projection(s)
