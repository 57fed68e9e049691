"""Population encoder: a graph network over a kNN graph of one population's cells."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from bioflow.nn.fields import make_activation


def knn_indices(x: Tensor, k: int, chunk_size: int = 1024) -> Tensor:
    """Indices of each cell's ``k`` nearest neighbours (Euclidean; plain torch).

    Pairwise distances are computed ``chunk_size`` rows at a time, so memory stays
    ``O(chunk_size * n)`` while time is ``O(n^2 d)``.  The cell itself is excluded.

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
        ``(n, k)`` long tensor; row ``i`` lists the neighbours of cell ``i`` in increasing
        index order.

    Examples
    --------
    >>> import torch
    >>> from bioflow.nn.population import knn_indices
    >>> knn_indices(torch.tensor([[0.0], [1.0], [5.0]]), k=1).squeeze(1).tolist()
    [1, 0, 1]
    """
    n = x.shape[0]
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if n < k + 1:
        raise ValueError(f"a population needs at least k + 1 = {k + 1} cells, got {n}")
    x = x.detach()
    out = []
    for start in range(0, n, chunk_size):
        rows = torch.arange(start, min(start + chunk_size, n), device=x.device)
        d = torch.cdist(x[rows], x)
        d[torch.arange(len(rows), device=x.device), rows] = float("inf")
        out.append(d.topk(k, dim=1, largest=False).indices.sort(1).values)
    return torch.cat(out)


def knn_edges(x: Tensor, k: int, chunk_size: int = 1024) -> Tensor:
    """Directed edges from each cell's ``k`` nearest neighbours to the cell.

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
    nb = knn_indices(x, k, chunk_size)
    dst = torch.arange(x.shape[0], device=x.device).repeat_interleave(k)
    return torch.stack([nb.reshape(-1), dst])


class KNNGraph:
    """A kNN graph in compressed-row form, with its transpose, for fast propagation.

    ``A`` has ``1 / (k + 1)`` at each of the ``k`` neighbours of every cell (self
    excluded); ``A @ h + h / (k + 1)`` is the mean over each cell and its neighbours, the
    GCN propagation on a kNN graph with self-loops.  The transpose (needed by the backward
    pass) is built once here, so a graph cached with a population subsample costs nothing
    per training step.

    Parameters
    ----------
    neighbours
        ``(n, k)`` neighbour indices (:func:`knn_indices`), self excluded.

    Examples
    --------
    >>> import torch
    >>> from bioflow.nn.population import KNNGraph
    >>> g = KNNGraph(torch.tensor([[1], [0], [1]]))
    >>> g.adjacency().to_dense()[2].tolist(), g.transpose().to_dense()[1].tolist()
    ([0.0, 0.5, 0.0], [0.5, 0.0, 0.5])
    """

    def __init__(self, neighbours: Tensor, *, _parts: tuple | None = None) -> None:
        if _parts is not None:
            self.crow, self.col, self.crow_t, self.col_t, self.n, self.k = _parts
            return
        if neighbours.dim() != 2:
            raise ValueError(f"neighbours must be (n, k), got {tuple(neighbours.shape)}")
        n, k = neighbours.shape
        dev = neighbours.device
        nb = neighbours.long()
        if k > 1 and bool((nb[:, 1:] < nb[:, :-1]).any()):
            nb = nb.sort(1).values
        col = nb.reshape(-1)
        rows = torch.arange(n, device=dev).repeat_interleave(k)
        order = torch.argsort(col, stable=True)
        counts = torch.bincount(col, minlength=n)
        self.crow = torch.arange(0, n * k + 1, k, device=dev)
        self.col = col
        self.crow_t = torch.cat([torch.zeros(1, dtype=torch.long, device=dev), counts.cumsum(0)])
        self.col_t = rows[order]
        self.n, self.k = int(n), int(k)

    @staticmethod
    def block_diagonal(graphs: Sequence[KNNGraph]) -> KNNGraph:
        """One graph of several populations (cells concatenated in order)."""
        if len({g.k for g in graphs}) != 1:
            raise ValueError("graphs to join must share k")
        crow, col, crow_t, col_t = [], [], [], []
        node, nnz = 0, 0
        for i, g in enumerate(graphs):
            last = i == len(graphs) - 1
            crow.append((g.crow if last else g.crow[:-1]) + nnz)
            crow_t.append((g.crow_t if last else g.crow_t[:-1]) + nnz)
            col.append(g.col + node)
            col_t.append(g.col_t + node)
            node += g.n
            nnz += g.n * g.k
        parts = (
            torch.cat(crow),
            torch.cat(col),
            torch.cat(crow_t),
            torch.cat(col_t),
            node,
            graphs[0].k,
        )
        return KNNGraph(torch.empty(0, 0), _parts=parts)

    def _csr(self, crow: Tensor, col: Tensor, dtype, device) -> Tensor:
        import warnings

        vals = torch.full((col.numel(),), 1.0 / (self.k + 1), dtype=dtype, device=device)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
            return torch.sparse_csr_tensor(crow.to(device), col.to(device), vals, (self.n, self.n))

    def adjacency(self, dtype=torch.float32, device=None) -> Tensor:
        """``A`` as a sparse CSR tensor ``(n, n)``."""
        return self._csr(self.crow, self.col, dtype, device or self.col.device)

    def transpose(self, dtype=torch.float32, device=None) -> Tensor:
        """``A^T`` as a sparse CSR tensor ``(n, n)``."""
        return self._csr(self.crow_t, self.col_t, dtype, device or self.col.device)

    def propagate(self, h: Tensor) -> Tensor:
        """``A @ h + h / (k + 1)``: mean of each cell and its neighbours, ``(n, w)``."""
        if h.shape[0] != self.n:
            raise ValueError(f"h has {h.shape[0]} rows; the graph has {self.n} nodes")
        a = self.adjacency(h.dtype, h.device)
        at = self.transpose(h.dtype, h.device)
        return _SparseProduct.apply(h, a, at) + h / (self.k + 1)


class _SparseProduct(torch.autograd.Function):
    """``A @ h`` whose backward uses a precomputed ``A^T`` (no transpose per step)."""

    @staticmethod
    def forward(ctx, h, a, at):
        ctx.at = at
        return a @ h

    @staticmethod
    def backward(ctx, grad):
        return ctx.at @ grad.contiguous(), None, None


class KNNGraphConv(nn.Module):
    """Graph convolution (Kipf & Welling) on a kNN graph given by neighbour indices.

    With self-loops every node of a kNN graph has in-degree ``k + 1``, so the symmetric
    normalisation of :class:`torch_geometric.nn.GCNConv` weights every message by
    ``1 / (k + 1)``: the layer is ``h_i' = W mean_{j in N(i) + {i}} h_j + b``.  This module
    computes exactly that with one sparse product (:meth:`KNNGraph.propagate`; no
    scatter, no degree pass), averaging before the linear map when that is the narrower
    side.

    Parameters
    ----------
    in_dim, out_dim
        Feature sizes.

    Examples
    --------
    >>> import torch
    >>> from bioflow.nn.population import KNNGraphConv, knn_indices
    >>> x = torch.randn(20, 3)
    >>> KNNGraphConv(3, 8)(x, knn_indices(x, 4)).shape
    torch.Size([20, 8])
    """

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.lin = nn.Linear(in_dim, out_dim, bias=False)
        self.bias = nn.Parameter(torch.zeros(out_dim))

    def forward(self, h: Tensor, graph: KNNGraph | Tensor) -> Tensor:
        """``h`` ``(N, in_dim)``; ``graph``: a :class:`KNNGraph` or ``(N, k)`` neighbours."""
        g = graph if isinstance(graph, KNNGraph) else KNNGraph(graph)
        if self.lin.in_features <= self.lin.out_features:
            return self.lin(g.propagate(h)) + self.bias
        return g.propagate(self.lin(h)) + self.bias


class PopulationEncoder(nn.Module):
    """Embed a population of cells into a unit vector ``h`` (Meta Flow Matching).

    Builds a kNN graph over the cells (:func:`knn_indices`, or neighbour lists computed
    once and passed in), applies graph convolutions (:class:`KNNGraphConv`: the GCN of
    the paper, identical to :class:`torch_geometric.nn.GCNConv` on this graph) with
    non-linearities, mean-pools the node features, optionally maps them
    with a linear head, and L2-normalises the result.  Mean pooling makes the embedding
    invariant to the order of the cells.

    Cost, for a population of ``n`` cells with ``d`` features, ``k`` neighbours and width
    ``w``: the graph takes ``O(n^2 d)`` time (skipped when neighbours are given); each layer
    takes ``O(n k w + n w^2)`` time and ``O(n w)`` memory.  Large populations are best
    subsampled (the model's ``embed_cells``).

    Parameters
    ----------
    in_dim
        Features per cell used to build the graph.
    hidden
        Widths of the graph-convolution layers.
    out_dim
        Size of the embedding (with ``head=False`` it must equal ``hidden[-1]``).
    k
        Neighbours in the kNN graph; every population needs at least ``k + 1`` cells.
    activation
        Non-linearity between layers.
    chunk_size
        Rows of the distance matrix computed at once.
    extra_dim
        Per-cell features appended to the cells for the convolutions only (e.g. a one-hot
        cell type); the graph is built on the ``in_dim`` features alone.
    head
        Map the pooled features with a linear layer (``False``: the reference's encoder,
        which normalises the pooled last layer directly).
    final_activation
        Apply the non-linearity after the last convolution too (the reference does not).

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
        extra_dim: int = 0,
        head: bool = True,
        final_activation: bool = True,
    ) -> None:
        super().__init__()
        if len(hidden) < 1:
            raise ValueError("hidden needs at least one graph-convolution layer width")
        if not head and out_dim != hidden[-1]:
            raise ValueError(
                f"head=False embeds the last layer directly: out_dim ({out_dim}) must equal "
                f"hidden[-1] ({hidden[-1]})"
            )
        self.in_dim, self.out_dim, self.k, self.chunk_size = in_dim, out_dim, k, chunk_size
        self.extra_dim = int(extra_dim)
        widths = [in_dim + self.extra_dim, *hidden]
        self.convs = nn.ModuleList(
            KNNGraphConv(a, b) for a, b in zip(widths[:-1], widths[1:], strict=True)
        )
        n_act = len(hidden) if final_activation else len(hidden) - 1
        self.acts = nn.ModuleList(make_activation(activation) for _ in range(n_act))
        self.head = nn.Linear(widths[-1], out_dim) if head else None

    def neighbours(self, x: Tensor) -> Tensor:
        """kNN neighbour indices ``(n, k)`` of one population ``(n, in_dim)``."""
        return knn_indices(x, self.k, self.chunk_size)

    def forward(
        self,
        populations: Tensor | Sequence[Tensor],
        neighbours: Sequence[Tensor] | None = None,
        extra: Sequence[Tensor] | None = None,
    ) -> Tensor:
        """Embed one population ``(n, in_dim)`` -> ``(out_dim,)``, or ``P`` -> ``(P, out_dim)``.

        Parameters
        ----------
        populations
            One population ``(n, in_dim)``, a list of them, or a tensor ``(P, n, in_dim)``.
        neighbours
            Optional precomputed graphs, one per population: a :class:`KNNGraph` or its
            ``(n_i, k)`` neighbour indices (:func:`knn_indices`); built here when ``None``.
        extra
            Per-cell extra features, one ``(n_i, extra_dim)`` tensor per population
            (required when ``extra_dim > 0``).
        """
        single = isinstance(populations, Tensor) and populations.dim() == 2
        pops = [populations] if single else list(populations)
        if not pops:
            raise ValueError("no population to embed")
        if extra is not None and single and isinstance(extra, Tensor):
            extra = [extra]
        if neighbours is not None and single and isinstance(neighbours, Tensor):
            neighbours = [neighbours]
        if self.extra_dim and (extra is None or len(extra) != len(pops)):
            raise ValueError(
                f"this encoder takes {self.extra_dim} extra features per cell: pass `extra`, "
                "one (n_i, extra_dim) tensor per population"
            )
        xs, nbs, sizes = [], [], []
        for i, x in enumerate(pops):
            if x.dim() != 2 or x.shape[1] != self.in_dim:
                raise ValueError(
                    f"population {i} has shape {tuple(x.shape)}; expected (n, {self.in_dim})"
                )
            if x.shape[0] < self.k + 1:
                raise ValueError(
                    f"population {i} has {x.shape[0]} cells; the encoder's kNN graph needs "
                    f"at least k + 1 = {self.k + 1}"
                )
            nb = self.neighbours(x) if neighbours is None else neighbours[i]
            if not isinstance(nb, KNNGraph):
                if nb.shape != (x.shape[0], self.k):
                    raise ValueError(
                        f"neighbours of population {i} have shape {tuple(nb.shape)}; "
                        f"expected ({x.shape[0]}, {self.k})"
                    )
                nb = KNNGraph(nb.to(x.device))
            if nb.n != x.shape[0] or nb.k != self.k:
                raise ValueError(
                    f"the graph of population {i} has {nb.n} nodes and k={nb.k}; expected "
                    f"{x.shape[0]} and k={self.k}"
                )
            if self.extra_dim:
                e = extra[i].to(device=x.device, dtype=x.dtype)
                if e.shape != (x.shape[0], self.extra_dim):
                    raise ValueError(
                        f"extra features of population {i} have shape {tuple(e.shape)}; "
                        f"expected ({x.shape[0]}, {self.extra_dim})"
                    )
                x = torch.cat([x, e], dim=1)
            xs.append(x)
            nbs.append(nb)
            sizes.append(x.shape[0])
        h = torch.cat(xs)
        graph = nbs[0] if len(nbs) == 1 else KNNGraph.block_diagonal(nbs)
        for i, conv in enumerate(self.convs):
            h = conv(h, graph)
            if i < len(self.acts):
                h = self.acts[i](h)
        if len(set(sizes)) == 1:
            pooled = h.reshape(len(pops), sizes[0], -1).mean(1)
        else:
            pooled = torch.stack([part.mean(0) for part in torch.split(h, sizes)])
        if self.head is not None:
            pooled = self.head(pooled)
        out = nn.functional.normalize(pooled, dim=1)
        return out[0] if single else out
