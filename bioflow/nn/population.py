"""Population encoder: a graph network over a kNN graph of one population's cells."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from bioflow.nn.fields import make_activation


def knn_edges(x: Tensor, k: int, chunk_size: int = 1024) -> Tensor:
    """Directed edges from each cell's ``k`` nearest neighbours to the cell (plain torch).

    Pairwise Euclidean distances are computed ``chunk_size`` rows at a time, so memory
    stays ``O(chunk_size * n)`` while time is ``O(n^2 d)``.  The cell itself is excluded.

    Parameters
    ----------
    x
        Cells ``(n, d)`` with ``n >= k + 1``.
    k
        Neighbours per cell.
    chunk_size
        Rows of the distance matrix held at once.

    Returns
    -------
    torch.Tensor
        ``edge_index`` of shape ``(2, n * k)`` (row 0: neighbour ``j``, row 1: cell ``i``),
        the message direction used by :class:`torch_geometric.nn.GCNConv`.

    Examples
    --------
    >>> import torch
    >>> from bioflow.nn.population import knn_edges
    >>> knn_edges(torch.randn(10, 2), k=3).shape
    torch.Size([2, 30])
    """
    n = x.shape[0]
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if n < k + 1:
        raise ValueError(f"a population needs at least k + 1 = {k + 1} cells, got {n}")
    src, dst = [], []
    for start in range(0, n, chunk_size):
        rows = torch.arange(start, min(start + chunk_size, n), device=x.device)
        d = torch.cdist(x[rows], x)
        d[torch.arange(len(rows), device=x.device), rows] = float("inf")
        nb = d.topk(k, dim=1, largest=False).indices
        src.append(nb.reshape(-1))
        dst.append(rows.repeat_interleave(k))
    return torch.stack([torch.cat(src), torch.cat(dst)])


class PopulationEncoder(nn.Module):
    """Embed a population of cells into a unit vector ``h`` (Meta Flow Matching).

    Builds a kNN graph over the cells (:func:`knn_edges`), applies a few
    :class:`torch_geometric.nn.GCNConv` layers with non-linearities, mean-pools the node
    features, maps them with a linear layer and L2-normalises the result.  Mean pooling
    makes the embedding invariant to the order of the cells.

    Cost, for a population of ``n`` cells with ``d`` features, ``k`` neighbours and width
    ``w``: the graph takes ``O(n^2 d)`` time (chunked, ``O(chunk_size * n)`` memory) and
    has ``n * k`` edges; each GCN layer takes ``O(n k w + n w^2)`` time and
    ``O(n k + n w)`` memory.  Large populations are therefore best subsampled (the
    model's ``embed_cells``) and ``k`` kept at ~50-100.

    Parameters
    ----------
    in_dim
        Features per cell.
    hidden
        Widths of the GCN layers.
    out_dim
        Size of the embedding.
    k
        Neighbours in the kNN graph; every population needs at least ``k + 1`` cells.
    activation
        Non-linearity between layers.
    chunk_size
        Rows of the distance matrix computed at once.

    Examples
    --------
    >>> import torch
    >>> from bioflow.nn import PopulationEncoder
    >>> enc = PopulationEncoder(2, hidden=(16, 16), out_dim=8, k=5)
    >>> h = enc(torch.randn(100, 2))
    >>> h.shape, round(float(h.norm()), 4)
    (torch.Size([8]), 1.0)
    >>> enc([torch.randn(50, 2), torch.randn(80, 2)]).shape
    torch.Size([2, 8])
    """

    def __init__(
        self,
        in_dim: int,
        hidden: Sequence[int] = (64, 64),
        out_dim: int = 32,
        k: int = 50,
        activation: str = "selu",
        chunk_size: int = 1024,
    ) -> None:
        super().__init__()
        from torch_geometric.nn import GCNConv

        if len(hidden) < 1:
            raise ValueError("hidden needs at least one GCN layer width")
        self.in_dim, self.out_dim, self.k, self.chunk_size = in_dim, out_dim, k, chunk_size
        widths = [in_dim, *hidden]
        self.convs = nn.ModuleList(
            GCNConv(a, b) for a, b in zip(widths[:-1], widths[1:], strict=True)
        )
        self.acts = nn.ModuleList(make_activation(activation) for _ in hidden)
        self.head = nn.Linear(widths[-1], out_dim)

    def graph(self, populations: Sequence[Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        """Concatenate populations into one graph: ``(x, edge_index, batch)``."""
        xs, edges, batch, offset = [], [], [], 0
        for i, x in enumerate(populations):
            if x.dim() != 2 or x.shape[1] != self.in_dim:
                raise ValueError(
                    f"population {i} has shape {tuple(x.shape)}; expected (n, {self.in_dim})"
                )
            if x.shape[0] < self.k + 1:
                raise ValueError(
                    f"population {i} has {x.shape[0]} cells; the encoder's kNN graph needs "
                    f"at least k + 1 = {self.k + 1}"
                )
            with torch.no_grad():
                edges.append(knn_edges(x, self.k, self.chunk_size) + offset)
            xs.append(x)
            batch.append(torch.full((x.shape[0],), i, dtype=torch.long, device=x.device))
            offset += x.shape[0]
        return torch.cat(xs), torch.cat(edges, dim=1), torch.cat(batch)

    def forward(self, populations: Tensor | Sequence[Tensor]) -> Tensor:
        """Embed one population ``(n, in_dim)`` -> ``(out_dim,)``, or a list -> ``(P, out_dim)``.

        A 3-d tensor ``(P, n, in_dim)`` is read as ``P`` populations of ``n`` cells.
        """
        single = isinstance(populations, Tensor) and populations.dim() == 2
        pops = [populations] if single else list(populations)
        if not pops:
            raise ValueError("no population to embed")
        x, edge_index, batch = self.graph(pops)
        h = x
        for conv, act in zip(self.convs, self.acts, strict=True):
            h = act(conv(h, edge_index))
        counts = torch.bincount(batch, minlength=len(pops)).to(h.dtype)
        pooled = torch.zeros(len(pops), h.shape[1], dtype=h.dtype, device=h.device)
        pooled = pooled.index_add(0, batch, h) / counts[:, None]
        out = nn.functional.normalize(self.head(pooled), dim=1)
        return out[0] if single else out
