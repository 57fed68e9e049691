"""Scalar fields of time and state, e.g. a per-cell growth rate ``g(t, x)``."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from bioflow.nn.fields import MLPVectorField


class ScalarField(nn.Module):
    """MLP ``f(t, x) -> R`` over ``[x, time embedding]`` (an MLP field with one output).

    Parameters
    ----------
    dim
        Dimension of ``x``.
    hidden, time_dim, activation, time_max_period
        As in :class:`~bioflow.nn.MLPVectorField`.

    Examples
    --------
    >>> import torch
    >>> from bioflow.nn.growth import ScalarField
    >>> ScalarField(3, hidden=(16,))(torch.rand(5), torch.randn(5, 3)).shape
    torch.Size([5])
    """

    def __init__(
        self,
        dim: int,
        hidden: Sequence[int] = (64, 64),
        time_dim: int = 16,
        activation: str = "selu",
        time_max_period: float = 10.0,
    ) -> None:
        super().__init__()
        self.mlp = MLPVectorField(
            dim,
            hidden=hidden,
            time_dim=time_dim,
            activation=activation,
            time_max_period=time_max_period,
        )
        # Replace the last layer (width -> dim) by width -> 1.
        last = self.mlp.net[-1]
        self.mlp.net[-1] = nn.Linear(last.in_features, 1)

    def forward(self, t: Tensor, x: Tensor) -> Tensor:
        """Values ``(n,)`` at times ``t`` (``(n,)`` or scalar) and points ``x`` ``(n, dim)``."""
        return self.mlp(t, x).squeeze(-1)
