"""Straight-through Gumbel-softmax guidance (STGFlow, Tang et al. 2025)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from bioflow.core.paths.simplex import sample_gumbel, tangent_projection


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


class STGuidance:
    """Guidance gradient of a reward on hard sequences drawn from ``x_t``.

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
        self.reward, self.n_samples = reward, n_samples
        self.temperature, self.scale, self.generator = temperature, scale, generator

    def gradient(self, x: Tensor) -> Tensor:
        """Mean gradient of the reward w.r.t. ``x`` ``(n, L, K)``, projected to zero sum."""
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            y = straight_through_sample(
                xg, self.n_samples, temperature=self.temperature, generator=self.generator
            )
            M, n = y.shape[:2]
            r = self.reward(y.reshape(M * n, *y.shape[2:])).reshape(M, n)
            (grad,) = torch.autograd.grad(r.mean(0).sum(), xg)
        return tangent_projection(grad)

    def __call__(self, velocity: Callable[[Tensor, Tensor], Tensor]):
        """Wrap ``velocity(t, x)`` into the guided field ``v + scale * gradient``."""

        def guided(t: Tensor, x: Tensor) -> Tensor:
            return velocity(t, x) + self.scale * self.gradient(x)

        return guided
