"""Time-conditioned sequence backbones (per-position logits) and a sequence classifier."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from bioflow.nn.embeddings import SinusoidalTimeEmbedding


class _DilatedBlock(nn.Module):
    def __init__(self, hidden: int, kernel_size: int, dilation: int, time_dim: int):
        super().__init__()
        pad = dilation * (kernel_size - 1) // 2
        self.norm = nn.GroupNorm(1, hidden)
        self.conv = nn.Conv1d(hidden, hidden, kernel_size, padding=pad, dilation=dilation)
        self.film = nn.Linear(time_dim, 2 * hidden)
        self.out = nn.Conv1d(hidden, hidden, 1)

    def forward(self, h: Tensor, temb: Tensor) -> Tensor:
        scale, shift = self.film(temb).unsqueeze(-1).chunk(2, dim=1)
        z = self.norm(h) * (1 + scale) + shift
        z = self.out(torch.nn.functional.gelu(self.conv(torch.nn.functional.gelu(z))))
        return h + z


class DilatedConvNet(nn.Module):
    """Time-conditioned dilated 1-D CNN over sequences (e.g. DNA), per-position logits.

    Parameters
    ----------
    in_channels
        Input features per position.
    n_letters
        Output logits per position (alphabet size ``K``).
    hidden
        Channels.
    dilations
        One residual block per dilation.
    kernel_size
        Odd convolution width.
    time_dim
        Size of the sinusoidal time embedding.

    Examples
    --------
    >>> import torch
    >>> net = DilatedConvNet(4, 4, hidden=16, dilations=(1, 2))
    >>> net(torch.rand(3), torch.rand(3, 10, 4)).shape
    torch.Size([3, 10, 4])
    """

    def __init__(
        self,
        in_channels: int,
        n_letters: int,
        hidden: int = 128,
        dilations: Sequence[int] = (1, 2, 4, 8, 1),
        kernel_size: int = 5,
        time_dim: int = 32,
    ):
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        self.time = nn.Sequential(
            SinusoidalTimeEmbedding(time_dim, max_period=2.0),
            nn.Linear(time_dim, time_dim),
            nn.GELU(),
        )
        self.inp = nn.Conv1d(in_channels, hidden, 1)
        self.blocks = nn.ModuleList(
            _DilatedBlock(hidden, kernel_size, d, time_dim) for d in dilations
        )
        self.head = nn.Sequential(
            nn.GroupNorm(1, hidden), nn.GELU(), nn.Conv1d(hidden, n_letters, 1)
        )

    def forward(self, t: Tensor, x: Tensor) -> Tensor:
        """Logits ``(n, L, K)`` for times ``t`` ``(n,)`` and inputs ``x`` ``(n, L, C)``."""
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device).expand(x.shape[0])
        temb = self.time(t)
        h = self.inp(x.transpose(1, 2))
        for block in self.blocks:
            h = block(h, temb)
        return self.head(h).transpose(1, 2)


class SequenceTransformer(nn.Module):
    """Small time-conditioned transformer encoder (e.g. proteins), per-position logits.

    Parameters
    ----------
    in_channels, n_letters
        Input features and output logits per position.
    d_model, n_heads, n_layers
        Transformer size.
    max_len
        Longest sequence (learned positional embedding).
    time_dim
        Size of the sinusoidal time embedding.

    Examples
    --------
    >>> import torch
    >>> net = SequenceTransformer(20, 20, d_model=32, n_layers=1, max_len=16)
    >>> net(torch.rand(2), torch.rand(2, 12, 20)).shape
    torch.Size([2, 12, 20])
    """

    def __init__(
        self,
        in_channels: int,
        n_letters: int,
        d_model: int = 128,
        n_heads: int = 4,
        n_layers: int = 3,
        max_len: int = 512,
        time_dim: int = 32,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.max_len = max_len
        self.time = nn.Sequential(
            SinusoidalTimeEmbedding(time_dim, max_period=2.0), nn.Linear(time_dim, d_model)
        )
        self.inp = nn.Linear(in_channels, d_model)
        self.pos = nn.Parameter(torch.randn(max_len, d_model) * 0.02)
        layer = nn.TransformerEncoderLayer(
            d_model, n_heads, 4 * d_model, dropout=dropout, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.head = nn.Sequential(nn.LayerNorm(d_model), nn.Linear(d_model, n_letters))

    def forward(self, t: Tensor, x: Tensor) -> Tensor:
        """Logits ``(n, L, K)`` for times ``t`` ``(n,)`` and inputs ``x`` ``(n, L, C)``."""
        L = x.shape[1]
        if L > self.max_len:
            raise ValueError(f"sequence length {L} exceeds max_len={self.max_len}")
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device).expand(x.shape[0])
        h = self.inp(x) + self.pos[:L] + self.time(t).unsqueeze(1)
        return self.head(self.encoder(h))


class SequenceClassifier(nn.Module):
    """CNN on one-hot sequences ``(n, L, K)`` -> ``(n, n_outputs)`` (logits or values).

    Parameters
    ----------
    n_letters
        Alphabet size ``K``.
    n_outputs
        Classes (classification) or targets (regression).
    hidden, n_layers, kernel_size
        Convolution stack; features are max- and mean-pooled over positions.

    Examples
    --------
    >>> import torch
    >>> SequenceClassifier(4, 2, hidden=8)(torch.rand(5, 20, 4)).shape
    torch.Size([5, 2])
    """

    def __init__(
        self,
        n_letters: int,
        n_outputs: int = 2,
        hidden: int = 64,
        n_layers: int = 2,
        kernel_size: int = 7,
    ):
        super().__init__()
        layers: list[nn.Module] = []
        c = n_letters
        for _ in range(n_layers):
            layers += [nn.Conv1d(c, hidden, kernel_size, padding=kernel_size // 2), nn.GELU()]
            c = hidden
        self.conv = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.Linear(2 * hidden, hidden), nn.GELU(), nn.Linear(hidden, n_outputs)
        )

    def forward(self, x: Tensor) -> Tensor:
        """Outputs ``(n, n_outputs)`` for one-hot (or soft) sequences ``(n, L, K)``."""
        h = self.conv(x.transpose(1, 2))
        return self.head(torch.cat([h.amax(-1), h.mean(-1)], dim=1))
