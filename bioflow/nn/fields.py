"""Vector-field networks ``v_theta(t, x | condition)`` for points in R^d."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from bioflow.nn.embeddings import SinusoidalTimeEmbedding

_ACTIVATIONS = {"selu": nn.SELU, "silu": nn.SiLU, "relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh}


def make_activation(name: str) -> nn.Module:
    """Activation module by name (``selu``, ``silu``, ``relu``, ``gelu``, ``tanh``)."""
    if name not in _ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(_ACTIVATIONS)}")
    return _ACTIVATIONS[name]()


def _time_vector(t: Tensor, n: int, ref: Tensor) -> Tensor:
    t = torch.as_tensor(t, dtype=ref.dtype, device=ref.device)
    return t.expand(n) if t.dim() == 0 else t.reshape(n)


class MLPVectorField(nn.Module):
    """MLP over ``[x, time embedding, condition]``.

    Parameters
    ----------
    dim
        Dimension of ``x`` (and of the output).
    hidden
        Widths of the hidden layers.
    time_dim
        Size of the sinusoidal time embedding.
    cond_dim
        Size of an optional condition vector appended to the input (0 for none).
    activation
        Activation name.
    time_max_period
        Longest period of the time embedding (of the order of the data's time span).

    Examples
    --------
    >>> import torch
    >>> from bioflow.nn import MLPVectorField
    >>> v = MLPVectorField(dim=3, hidden=(16, 16))
    >>> v(torch.rand(4), torch.randn(4, 3)).shape
    torch.Size([4, 3])
    """

    def __init__(
        self,
        dim: int,
        hidden: Sequence[int] = (256, 256, 256),
        time_dim: int = 16,
        cond_dim: int = 0,
        activation: str = "selu",
        time_max_period: float = 10.0,
    ) -> None:
        super().__init__()
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        self.dim, self.cond_dim = dim, cond_dim
        self.time_embed = SinusoidalTimeEmbedding(time_dim, max_period=time_max_period)
        layers: list[nn.Module] = []
        width = dim + time_dim + cond_dim
        for h in hidden:
            layers += [nn.Linear(width, h), make_activation(activation)]
            width = h
        layers.append(nn.Linear(width, dim))
        self.net = nn.Sequential(*layers)

    def forward(self, t: Tensor, x: Tensor, cond: Tensor | None = None) -> Tensor:
        """Velocity at times ``t`` (``(n,)`` or scalar) and points ``x`` ``(n, dim)``."""
        parts = [x, self.time_embed(_time_vector(t, x.shape[0], x))]
        if self.cond_dim:
            if cond is None:
                raise ValueError(f"this field needs a condition of size {self.cond_dim}")
            parts.append(
                cond.expand(x.shape[0], -1) if cond.dim() == 1 or cond.shape[0] == 1 else cond
            )
        return self.net(torch.cat(parts, dim=1))


class _ResidualBlock(nn.Module):
    def __init__(self, width: int, activation: str) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.lin1 = nn.Linear(width, width)
        self.act = make_activation(activation)
        self.lin2 = nn.Linear(width, width)

    def forward(self, h: Tensor) -> Tensor:
        return h + self.lin2(self.act(self.lin1(self.norm(h))))


class ResidualMLPVectorField(nn.Module):
    """Residual MLP over ``[x, time embedding, extra features, condition]``.

    Parameters
    ----------
    dim
        Dimension of ``x`` and of the output.
    width
        Width of the residual stream.
    depth
        Number of residual blocks.
    time_dim
        Size of the time embedding.
    cond_dim
        Size of the condition vector (0 for none).
    activation
        Activation name.
    features
        Optional module mapping ``x`` ``(n, dim)`` to extra input features (for example
        :class:`~bioflow.nn.FourierFeatures`); it must have an ``out_dim`` attribute.
    time_max_period
        Longest period of the time embedding.

    Examples
    --------
    >>> import torch
    >>> from bioflow.nn import ResidualMLPVectorField
    >>> v = ResidualMLPVectorField(dim=2, width=32, depth=2, cond_dim=4)
    >>> v(torch.rand(5), torch.randn(5, 2), torch.randn(5, 4)).shape
    torch.Size([5, 2])
    """

    def __init__(
        self,
        dim: int,
        width: int = 256,
        depth: int = 3,
        time_dim: int = 16,
        cond_dim: int = 0,
        activation: str = "silu",
        features: nn.Module | None = None,
        time_max_period: float = 10.0,
    ) -> None:
        super().__init__()
        self.dim, self.cond_dim = dim, cond_dim
        self.time_embed = SinusoidalTimeEmbedding(time_dim, max_period=time_max_period)
        self.features = features
        feat_dim = getattr(features, "out_dim", 0) if features is not None else 0
        self.inp = nn.Linear(dim + time_dim + feat_dim + cond_dim, width)
        self.blocks = nn.ModuleList(_ResidualBlock(width, activation) for _ in range(depth))
        self.out = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, dim))

    def forward(self, t: Tensor, x: Tensor, cond: Tensor | None = None) -> Tensor:
        """Velocity at times ``t``, points ``x`` ``(n, dim)`` given ``cond`` ``(n, cond_dim)``."""
        n = x.shape[0]
        parts = [x, self.time_embed(_time_vector(t, n, x))]
        if self.features is not None:
            parts.append(self.features(x))
        if self.cond_dim:
            if cond is None:
                raise ValueError(f"this field needs a condition of size {self.cond_dim}")
            parts.append(cond.expand(n, -1) if cond.dim() == 1 or cond.shape[0] == 1 else cond)
        h = self.inp(torch.cat(parts, dim=1))
        for block in self.blocks:
            h = block(h)
        return self.out(h)
