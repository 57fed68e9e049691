"""Embeddings of time and of positions."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class SinusoidalTimeEmbedding(nn.Module):
    """Sinusoidal embedding of a scalar time, plus the raw time as the first feature.

    Parameters
    ----------
    dim
        Output size (>= 3); ``dim - 1`` sinusoidal features and the raw time.
    max_period
        Longest period of the sinusoids, in the units of ``t``.  Choose it of the order of
        the time span of the data so that nearby times are told apart.
    min_period
        Shortest period.

    Examples
    --------
    >>> import torch
    >>> from bioflow.nn import SinusoidalTimeEmbedding
    >>> SinusoidalTimeEmbedding(16)(torch.rand(5)).shape
    torch.Size([5, 16])
    """

    def __init__(self, dim: int = 32, max_period: float = 10.0, min_period: float = 0.01):
        super().__init__()
        if dim < 3:
            raise ValueError(f"time embedding dim must be >= 3, got {dim}")
        self.dim = dim
        half = (dim - 1) // 2
        freqs = 2 * math.pi / torch.logspace(math.log10(min_period), math.log10(max_period), half)
        self.register_buffer("freqs", freqs, persistent=False)
        self.pad = dim - 1 - 2 * half

    def forward(self, t: Tensor) -> Tensor:
        """Embed times of shape ``(n,)`` (or ``(n, 1)``) into ``(n, dim)``."""
        t = t.reshape(-1, 1).to(self.freqs.dtype)
        ang = t * self.freqs[None, :]
        parts = [t, torch.sin(ang), torch.cos(ang)]
        if self.pad:
            parts.append(torch.zeros_like(t))
        return torch.cat(parts, dim=1)


class FourierFeatures(nn.Module):
    """Random Fourier features ``[sin(2 pi x B), cos(2 pi x B)]`` of inputs.

    The projection ``B`` is a registered buffer, so it is saved with checkpoints and a
    reloaded model gives identical predictions.

    Parameters
    ----------
    in_dim
        Input features.
    n_features
        Number of frequencies; the output has ``2 * n_features`` columns.
    scale
        Standard deviation of the entries of ``B``.
    seed
        Seed for ``B``.

    Examples
    --------
    >>> import torch
    >>> from bioflow.nn import FourierFeatures
    >>> FourierFeatures(2, 8)(torch.zeros(3, 2)).shape
    torch.Size([3, 16])
    """

    def __init__(self, in_dim: int, n_features: int = 32, scale: float = 1.0, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("B", torch.randn(in_dim, n_features, generator=g) * scale)
        self.out_dim = 2 * n_features

    def forward(self, x: Tensor) -> Tensor:
        """Map ``(n, in_dim)`` to ``(n, 2 * n_features)``."""
        proj = 2 * math.pi * x @ self.B
        return torch.cat([torch.sin(proj), torch.cos(proj)], dim=-1)
