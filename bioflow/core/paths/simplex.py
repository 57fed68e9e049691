"""Gumbel-Softmax probability path on the simplex (after Tang et al. 2025, GSFM).

Each position of a sequence over ``K`` letters lives on the simplex ``Delta^{K-1}``.  For a
clean letter ``k`` and i.i.d. standard Gumbel noise ``g`` the path is

``x_t = softmax(z_t / c(t))``, ``z_t = rho(t) e_k + g``, ``c(t) = beta * tau(t)``,
``tau(t) = tau_max * exp(-lam * t)``,

i.e. ``softmax((rho(t) / beta * e_k + g / beta) / tau(t))``: the paper's interpolant
``softmax((e_k + g / beta) / tau(t))`` with its one-hot signal ``e_k`` ramped by a signal
level ``rho(t) / beta``.  ``rho`` is chosen so that ``argmax x_t`` follows the uniform-mixture
path of discrete flow matching: by the Gumbel-max trick
``P(argmax x_t = k) = kappa_t + (1 - kappa_t) / K`` with ``kappa_t = (1 - delta) t``, hence
``rho(t) = log(1 + K kappa_t / (1 - kappa_t))``.

Why not the paper's interpolant as printed: with ``rho`` constant the temperature is an
invertible rescaling, so ``x_t`` carries the same information at every ``t``; the law at
``t = 0`` depends on the data (it is not the sampler's prior ``softmax(g / (beta tau_max))``);
with ``tau(1) = 0.5`` the path does not reach a vertex; and the paper's conditional velocity
``(lam / tau) x_k (e_k - x)`` is not the time derivative of its interpolant (it leaves out the
Gumbel term).  Here:

* ``t = 0``: ``rho(0) = 0``, so ``x_0 = softmax(g / (beta tau_max))`` for every letter: the
  prior of the sampler, independent of the data.
* ``t = 1``: ``rho(1) = log(1 + K (1 - delta) / delta)`` and ``tau(1) = tau_max e^{-lam}``
  small, so ``x_1`` sits at the vertex ``e_k`` up to ``(K - 1) exp(-gap / c(1))``
  (see :meth:`GumbelSoftmaxPath.vertex_error`).
* The conditional velocity is the exact time derivative at fixed noise,
  ``u_t(x | k) = (rho'(t) / c(t)) x * (e_k - x_k) + lam x * (log x - <x, log x>)``:
  the first term is the paper's ``x_k (e_k - x)`` form (same vector) with the rate
  ``rho' / c``, the second is the Gumbel-noise term the paper drops.
* It depends on ``(x, k, t)`` only (``g`` is a function of ``x`` given ``k``), and is
  affine in ``e_k``, so the marginal velocity is exactly
  ``v_t(x) = (rho'/c) x * (p - <p, x>) + lam x * (log x - <x, log x>)`` with
  ``p = P(k | x_t = x)`` the posterior of the clean letter -- what a network trained with
  cross-entropy on the clean letters estimates.
"""

from __future__ import annotations

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
        Conditional velocity ``dx_t / dt`` at fixed noise, shape ``(n, L, K)``.
    t
        Times, shape ``(n,)``.
    noise
        The Gumbel noise ``g`` ``(n, L, K)`` behind ``x_t``.
    tau
        Temperatures ``tau(t)``, shape ``(n,)``.
    target
        Clean letters, shape ``(n, L)`` (long).
    logits
        Noisy logits ``z_t = rho(t) e_k + g``, shape ``(n, L, K)``; ``x_t = softmax(z_t / c(t))``.
    """

    tau: Tensor | None = None
    target: Tensor | None = None
    logits: Tensor | None = None


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


def _time(t: Tensor | float) -> Tensor:
    """``t`` as a floating tensor (float32 unless already floating)."""
    t = torch.as_tensor(t)
    return t if t.is_floating_point() else t.float()


def _col(v: Tensor, like: Tensor) -> Tensor:
    """``v`` (scalar or ``(n,)``) shaped to broadcast against ``(n, L, K)``."""
    v = torch.as_tensor(v, dtype=like.dtype, device=like.device)
    return v.reshape(-1, 1, 1) if v.dim() else v


class GumbelSoftmaxPath(ProbabilityPath):
    """The Gumbel-Softmax interpolant toward clean one-hot letters (see the module text).

    Parameters
    ----------
    tau_max
        Temperature at ``t = 0``.
    lam
        Decay rate: ``tau(t) = tau_max * exp(-lam * t)``.  The default ``5`` puts
        ``c(1) = beta tau(1)`` at 0.13, so ``x_1`` is within ``1e-3`` of its vertex with
        probability > 0.999 for ``K <= 512`` (:meth:`vertex_error`).
    beta
        Inverse scale of the Gumbel noise (the paper's ``beta``).  The law of ``argmax x_t``
        does not depend on ``beta`` or ``tau``; they set how sharp ``x_t`` is (``c = beta
        tau``).
    delta
        Mass left off the clean letter at ``t = 1``: ``P(argmax x_1 = k) = 1 - delta (K -
        1) / K``.

    Examples
    --------
    >>> import torch
    >>> path = GumbelSoftmaxPath()
    >>> ps = path.sample(None, torch.tensor([[0, 1, 2, 3]]), torch.ones(1), K=4)
    >>> bool((ps.x_t.argmax(-1) == torch.tensor([[0, 1, 2, 3]])).all())
    True
    >>> bool(torch.allclose(ps.u_t.sum(-1), torch.zeros(1, 4), atol=1e-6))
    True
    """

    def __init__(
        self, tau_max: float = 10.0, lam: float = 5.0, beta: float = 2.0, delta: float = 1e-4
    ):
        if not (tau_max > 0 and lam > 0 and beta > 0):
            raise ValueError(f"tau_max, lam and beta must be > 0, got {tau_max}, {lam}, {beta}")
        if not 0 < delta < 1:
            raise ValueError(f"delta must be in (0, 1), got {delta}")
        self.tau_max, self.lam, self.beta = float(tau_max), float(lam), float(beta)
        self.delta = float(delta)

    def __repr__(self) -> str:
        return (
            f"GumbelSoftmaxPath(tau_max={self.tau_max}, lam={self.lam}, beta={self.beta}, "
            f"delta={self.delta})"
        )

    # ---- schedules -------------------------------------------------------------------
    def tau(self, t: Tensor | float) -> Tensor:
        """Temperature ``tau_max * exp(-lam * t)`` (same shape as ``t``)."""
        return self.tau_max * torch.exp(-self.lam * _time(t))

    def scale(self, t: Tensor | float) -> Tensor:
        """``c(t) = beta * tau(t)``: ``x_t = softmax(z_t / c(t))``."""
        return self.beta * self.tau(t)

    def kappa(self, t: Tensor | float) -> Tensor:
        """``(1 - delta) t``: the weight of the clean letter in the law of ``argmax x_t``."""
        return (1.0 - self.delta) * _time(t)

    def rho(self, t: Tensor | float, K: int) -> Tensor:
        """Signal level ``log(1 + K kappa_t / (1 - kappa_t))`` of ``z_t = rho e_k + g``."""
        k = self.kappa(t)
        return torch.log1p(K * k / (1.0 - k))

    def rho_dot(self, t: Tensor | float, K: int) -> Tensor:
        """``d rho / dt = (1 - delta) [(K - 1) / (1 + (K - 1) kappa) + 1 / (1 - kappa)]``."""
        k = self.kappa(t)
        return (1.0 - self.delta) * ((K - 1) / (1.0 + (K - 1) * k) + 1.0 / (1.0 - k))

    # ---- the path --------------------------------------------------------------------
    def noisy_logits(self, target: Tensor, K: int, t: Tensor, gumbel: Tensor) -> Tensor:
        """``z_t = rho(t) e_k + g`` for letters ``target`` ``(n, L)``, shape ``(n, L, K)``."""
        rho = _col(self.rho(t, K), gumbel)
        return rho * F.one_hot(target, K).to(gumbel) + gumbel

    def interpolate(self, target: Tensor, K: int, t: Tensor, gumbel: Tensor) -> Tensor:
        """``x_t = softmax(z_t / c(t))`` for letters ``target`` ``(n, L)`` and noise ``g``."""
        z = self.noisy_logits(target, K, t, gumbel)
        return torch.softmax(z / _col(self.scale(t), z), dim=-1)

    def _velocity(self, x: Tensor, e: Tensor, log_x: Tensor, t: Tensor) -> Tensor:
        K = x.shape[-1]
        a = _col(self.rho_dot(t, K) / self.scale(t), x)
        drift = a * x * (e - (e * x).sum(-1, keepdim=True))
        noise = self.lam * x * (log_x - (x * log_x).sum(-1, keepdim=True))
        return drift + noise

    def conditional_velocity(self, x: Tensor, target: Tensor, t: Tensor) -> Tensor:
        """Exact ``dx_t/dt`` at fixed noise, from ``x`` ``(n, L, K)`` and letters ``(n, L)``.

        ``(rho'/c) x * (e_k - x_k) + lam x * (log x - <x, log x>)``; sums to zero over K.
        """
        e = F.one_hot(target, x.shape[-1]).to(x)
        return self._velocity(x, e, torch.log(x.clamp_min(1e-30)), t)

    def model_velocity(self, x: Tensor, p: Tensor, t: Tensor) -> Tensor:
        """Marginal velocity ``E[u_t(x | k) | x_t = x]`` for a clean-letter law ``p``.

        ``(rho'/c) x * (p - <p, x>) + lam x * (log x - <x, log x>)``: exact when ``p`` is the
        posterior ``P(k | x_t = x)`` (what cross-entropy training estimates), because the
        conditional velocity is affine in ``e_k``.

        Parameters
        ----------
        x, p
            Shape ``(n, L, K)``; ``p`` on the simplex.
        t
            Scalar or ``(n,)``.

        Returns
        -------
        torch.Tensor
            ``(n, L, K)``, zero sum over the alphabet.
        """
        return self._velocity(x, p, torch.log(x.clamp_min(1e-30)), t)

    def prior_sample(self, n: int, L: int, K: int, *, generator=None, device=None) -> Tensor:
        """Start points ``softmax(g / (beta * tau_max))`` ``(n, L, K)``: the law of ``x_0``."""
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
        """Draw ``x_t`` and its exact velocity toward the clean letters ``x1``.

        Parameters
        ----------
        x0
            Source noise: standard Gumbel draws ``(n, L, K)`` (``x_0 = softmax(x0 / (beta
            tau_max))``), or ``None`` to draw them (after ``t``) with ``generator``.
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
            ``u_t`` is ``dx_t / dt`` at fixed noise (computed from the logits, exact even
            where ``x_t`` underflows).
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
        t = _time(t).to(device).expand(n).contiguous()
        g = (
            x0
            if x0 is not None
            else sample_gumbel((*target.shape, K), generator=generator, device=device)
        )
        z = self.noisy_logits(target, K, t, g)
        zc = z / _col(self.scale(t), z)
        x = torch.softmax(zc, dim=-1)
        log_x = torch.log_softmax(zc, dim=-1)  # exact even where x underflows
        u = self._velocity(x, F.one_hot(target, K).to(x), log_x, t)
        return SimplexPathSample(
            x_t=x, u_t=u, t=t, noise=g, tau=self.tau(t), target=target, logits=z
        )

    # ---- posterior, features, score --------------------------------------------------
    def logits_from_x(self, x: Tensor, t: Tensor, eps: float = 1e-30) -> Tensor:
        """``c(t) * (log x - mean log x)``: the centred noisy logits ``z_t``, ``(n, L, K)``."""
        lx = torch.log(x.clamp_min(eps))
        return _col(self.scale(t), x) * (lx - lx.mean(-1, keepdim=True))

    def log_odds_features(self, x: Tensor, t: Tensor, eps: float = 1e-12) -> Tensor:
        """Network features: the centred noisy logits ``c(t) (log x - mean log x)``.

        A view of ``x_t`` whose scale does not change with the temperature.
        """
        return self.logits_from_x(x, t, eps)

    def posterior_logits(self, z: Tensor, t: Tensor, log_prior: Tensor) -> Tensor:
        """Exact ``log P(k | x_t) + const`` for noisy logits ``z`` (any additive shift).

        ``x_t`` given ``k`` is Concrete with location ``exp(rho e_k)`` and temperature ``c``,
        so ``P(k | x) ∝ pi_k (sum_i e^{-z_i} + (e^rho - 1) e^{-z_k})^{-K}``.

        Parameters
        ----------
        z
            Noisy logits ``(n, L, K)`` (e.g. :meth:`logits_from_x`).
        t
            Scalar or ``(n,)``.
        log_prior
            Log of the clean-letter law ``pi``, broadcastable to ``(n, L, K)`` (e.g. ``(L, K)``).

        Returns
        -------
        torch.Tensor
            ``(n, L, K)`` unnormalised log-posterior.
        """
        K = z.shape[-1]
        rho = _col(self.rho(t, K), z)
        lse = torch.logsumexp(-z, dim=-1, keepdim=True)
        log_em1 = torch.log(torch.expm1(rho).clamp_min(1e-30))
        return log_prior - K * torch.logaddexp(lse.expand_as(z), log_em1 - z)

    def log_likelihood(self, x: Tensor, t: Tensor) -> Tensor:
        """``log p_t(x | k) + const`` for every letter ``k``, shape ``(n, L, K)``.

        The posterior with a uniform prior (:meth:`posterior_logits` with ``log_prior = 0``).
        Since the noise is independent per position, ``P(k_l | x) ∝ P(k_l | x_{-l}) p_t(x_l |
        k_l)``: a network that adds these log-likelihoods to its output only has to learn
        ``log P(k_l | x_{-l})`` (the letter law given the other positions).
        """
        z = self.logits_from_x(x, t)
        return self.posterior_logits(z, t, torch.zeros((), dtype=z.dtype, device=z.device))

    def vertex_error(self, target: Tensor, K: int, gumbel: Tensor) -> Tensor:
        """``1 - x_1[k]`` ``(n, L)`` at ``t = 1`` for letters ``(n, L)``, noise ``(n, L, K)``."""
        x1 = self.interpolate(target, K, torch.ones(target.shape[0]), gumbel)
        return 1.0 - x1.gather(-1, target.unsqueeze(-1)).squeeze(-1)

    def conditional_score(self, x: Tensor, target: Tensor, t: Tensor, eps: float = 1e-12) -> Tensor:
        """``x * grad_x log p_t(x | k)`` projected to the tangent space, shape ``(n, L, K)``.

        ``x_t`` given ``k`` follows a Concrete law with location ``alpha = exp(rho(t) e_k)``
        and temperature ``c = beta * tau``; its log-density is
        ``-(c + 1) sum log x_i - K log sum_i alpha_i x_i^{-c} + const``.  The score is
        multiplied by ``x`` (a gradient in log-coordinates) so that it stays bounded.
        """
        K = x.shape[-1]
        c = _col(self.scale(t), x)
        lx = torch.log(x.clamp_min(eps))
        log_alpha = _col(self.rho(t, K), x) * F.one_hot(target, K).to(x)
        w = torch.softmax(log_alpha - c * lx, dim=-1)  # alpha_i x_i^{-c} / sum
        s = -(c + 1) + K * c * w
        return tangent_projection(s)

    def score_from_probs(self, x: Tensor, p: Tensor, t: Tensor, eps: float = 1e-12) -> Tensor:
        """Mixture ``sum_k p_k * conditional_score(x | k)`` under a letter law ``p``.

        With ``p = P(k | x_t)`` this is the marginal score of the path (scaled by ``x``).
        """
        K = x.shape[-1]
        c = _col(self.scale(t), x)
        em1 = torch.expm1(_col(self.rho(t, K), x))
        lx = torch.log(x.clamp_min(eps))
        base = -c * lx  # (n, L, K)
        # w^(k)_i = exp(rho [i==k] + base_i) / Z_k ; Z_k = S + (e^rho - 1) exp(base_k)
        m = base.max(-1, keepdim=True).values
        eb = torch.exp(base - m)
        S = eb.sum(-1, keepdim=True)
        Zk = S + em1 * eb  # (n, L, K) indexed by k
        # sum_k p_k w^(k)_i = eb_i * [sum_k p_k / Z_k] + (e^rho - 1) eb_i p_i / Z_i
        w = eb * (p / Zk).sum(-1, keepdim=True) + em1 * eb * p / Zk
        s = -(c + 1) + K * c * w
        return tangent_projection(s)


__all__ = ["GumbelSoftmaxPath", "SimplexPathSample", "sample_gumbel", "tangent_projection"]
