"""Draws from per-position categorical laws (the letters of a sequence sampler)."""

from __future__ import annotations

import torch
from torch import Tensor


def sample_categorical(
    probs: Tensor, *, n_samples: int | None = None, generator: torch.Generator | None = None
) -> Tensor:
    """Indices drawn from the categorical laws ``probs`` ``(..., K)`` over the last axis.

    Inverse-CDF sampling with one uniform per draw: the same generator gives the same
    letters whatever the device, and the draw consumes exactly ``prod(shape[:-1])``
    (times ``n_samples``) uniforms.

    Parameters
    ----------
    probs
        Probabilities ``(..., K)``, non-negative, summing to 1 over the last axis.
    n_samples
        ``None``: one draw per law, shape ``probs.shape[:-1]``; an integer ``M``: ``M``
        independent draws per law, shape ``(M, *probs.shape[:-1])``.
    generator
        Torch generator on ``probs``'s device.

    Returns
    -------
    torch.Tensor
        Long indices in ``[0, K)``.

    Examples
    --------
    >>> import torch
    >>> p = torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    >>> sample_categorical(p).tolist()
    [1, 0]
    >>> sample_categorical(p, n_samples=4).shape
    torch.Size([4, 2])
    """
    if probs.dim() < 1 or probs.shape[-1] < 1:
        raise ValueError(f"probs must have shape (..., K) with K >= 1, got {tuple(probs.shape)}")
    if n_samples is not None and n_samples < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}")
    K = probs.shape[-1]
    cdf = probs.cumsum(-1)
    shape = probs.shape[:-1] if n_samples is None else (n_samples, *probs.shape[:-1])
    u = torch.rand(shape, generator=generator, device=probs.device)
    if n_samples is not None:
        cdf = cdf.unsqueeze(0)
    return (cdf < u.unsqueeze(-1)).sum(-1).clamp_max(K - 1)
