"""Move results between spaces: PCA back to genes, model space onto a 2-D embedding.

Everything here is numpy / scipy on arrays read from an AnnData; nothing is written into
the AnnData.  Used by the ``tl`` layer (to annotate) and the ``pl`` layer (to draw what
``tl`` wrote on another basis).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp


@dataclass
class PCADecoder:
    """Affine map from a PCA representation back to the genes it was computed from.

    ``decode(z) = mean + (z - z_mean) @ inverse``: in the span of the loadings it inverts
    the projection exactly (for scanpy's ``sc.pp.pca`` with ``zero_center=True``,
    ``z_mean = 0`` and this is the usual reconstruction ``mean + z @ PCs.T``); outside
    that span, which the representation does not see, each gene keeps the mean of the
    cells the decoder was read from.  It is a *reconstruction*, not a measurement.

    Attributes
    ----------
    mean
        Mean expression of the reference cells, ``(n_vars,)``.
    z_mean
        Mean representation of the same cells, ``(d,)``.
    inverse
        ``(d, n_vars)``: pseudo-inverse of the (per-component scaled) loadings.
    var_names
        The genes, ``n_vars`` names.
    """

    mean: np.ndarray
    z_mean: np.ndarray
    inverse: np.ndarray
    var_names: list[str]

    def decode(self, z: np.ndarray) -> np.ndarray:
        """Genes ``(n, n_vars)`` reconstructed from representations ``z`` ``(n, d)``."""
        z = np.asarray(z, dtype=np.float64)
        return (self.mean + (z - self.z_mean) @ self.inverse).astype(np.float32)

    def decode_direction(self, v: np.ndarray) -> np.ndarray:
        """Gene-space vectors ``(n, n_vars)`` of representation-space vectors ``v`` ``(n, d)``.

        The linear part of :meth:`decode` (no mean): velocities and displacements.
        """
        return (np.asarray(v, dtype=np.float64) @ self.inverse).astype(np.float32)


def _dense_rows(m, rows) -> np.ndarray:
    sub = m[rows]
    if sp.issparse(sub):
        sub = sub.toarray()
    elif hasattr(sub, "to_memory"):
        sub = sub.to_memory()
    return np.asarray(sub, dtype=np.float64)


def _column_mean(m) -> np.ndarray:
    if hasattr(m, "to_memory"):
        m = m.to_memory()
    return np.asarray(m.mean(axis=0), dtype=np.float64).ravel()


def pca_decoder(
    adata,
    use_rep: str | None,
    *,
    loadings_key: str = "PCs",
    max_check: int = 2000,
    tol: float = 1e-2,
    seed: int = 0,
) -> tuple[PCADecoder | None, str]:
    """Read a decoder from ``.obsm[use_rep]`` back to ``.X`` when the data allow it.

    The representation counts as the PCA of ``.X`` when, on up to ``max_check`` cells,
    ``obsm[use_rep] - mean(obsm[use_rep])`` equals ``(X - mean(X)) @ varm[loadings_key]``
    up to one scale per component (relative residual below ``tol``).  This holds for
    ``sc.pp.pca`` with or without centring, with ``mask_var`` / highly-variable genes
    (loadings of the other genes are zero), for a subset of the cells it was computed on,
    and for whitened or rescaled components; it fails when ``.X`` changed after the PCA.

    Parameters
    ----------
    adata
        AnnData with ``.X``, ``.obsm[use_rep]`` and ``.varm[loadings_key]``; not modified.
    use_rep
        The representation (``"X_pca"``); ``None`` (the model works on ``.X``) has no
        decoder.
    loadings_key
        Key of ``.varm`` holding the loadings ``(n_vars, d)`` (scanpy: ``"PCs"``).
    max_check
        Cells used for the consistency check.
    tol
        Largest relative residual accepted.
    seed
        Seed of the cells checked.

    Returns
    -------
    decoder, reason
        The :class:`~bioflow.data.embedding.PCADecoder` and ``""``, or ``None`` and a
        sentence saying why not and how to get genes.
    """
    how = (
        "to get predictions in gene space, fit the model on the output of sc.pp.pca "
        "(use_rep='X_pca' with adata.varm['PCs'] and an unchanged adata.X), or on adata.X "
        "itself (use_rep=None)"
    )
    if use_rep is None:
        return None, "the model works on adata.X: predictions are already genes"
    if adata.X is None or adata.n_vars == 0:
        return None, f"adata has no gene matrix .X; {how}"
    if use_rep not in adata.obsm:
        return None, f"adata.obsm has no {use_rep!r}; {how}"
    if loadings_key not in adata.varm:
        return None, (
            f"adata.varm has no {loadings_key!r} (the loadings sc.pp.pca writes for "
            f"obsm['X_pca']), so {use_rep!r} cannot be mapped back to genes; {how}"
        )
    loadings = np.asarray(adata.varm[loadings_key], dtype=np.float64)
    z_all = np.asarray(adata.obsm[use_rep], dtype=np.float64)
    if loadings.ndim != 2 or loadings.shape[1] != z_all.shape[1]:
        return None, (
            f"adata.varm[{loadings_key!r}] has shape {loadings.shape} but "
            f"adata.obsm[{use_rep!r}] has {z_all.shape[1]} components; {how}"
        )
    mean = _column_mean(adata.X)
    z_mean = z_all.mean(axis=0)
    rng = np.random.default_rng(seed)
    n = adata.n_obs
    rows = np.sort(rng.choice(n, size=min(n, max_check), replace=False))
    proj = (_dense_rows(adata.X, rows) - mean) @ loadings  # (k, d)
    target = z_all[rows] - z_mean
    den = (proj**2).sum(axis=0)
    scale = np.where(den > 0, (proj * target).sum(axis=0) / np.where(den > 0, den, 1.0), 1.0)
    resid = np.linalg.norm(target - proj * scale) / max(np.linalg.norm(target), 1e-12)
    if not np.isfinite(resid) or resid > tol or np.any(np.abs(scale) < 1e-12):
        return None, (
            f"adata.obsm[{use_rep!r}] is not the projection of adata.X on "
            f"adata.varm[{loadings_key!r}] (relative residual {resid:.2g}): X was changed "
            f"after the PCA, or {use_rep!r} was computed from other data; {how}"
        )
    inverse = np.linalg.pinv(loadings * scale)  # (d, n_vars)
    return PCADecoder(mean, z_mean, inverse, [str(v) for v in adata.var_names]), ""


def neighbors(ref: np.ndarray, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest rows of ``ref`` ``(n, d)`` to each row of ``query`` ``(m, d)``.

    Returns
    -------
    dist, idx
        Both ``(m, k)``: Euclidean distances and row indices into ``ref``, nearest first.
    """
    from scipy.spatial import cKDTree

    if len(ref) == 0:
        raise ValueError("no reference cells to find neighbours among")
    k = int(min(k, len(ref)))
    dist, idx = cKDTree(np.asarray(ref, dtype=np.float64)).query(
        np.asarray(query, dtype=np.float64), k=k
    )
    return dist.reshape(len(query), k), idx.reshape(len(query), k)


def knn_map(
    ref_rep: np.ndarray, ref_basis: np.ndarray, query: np.ndarray, *, k: int = 15
) -> np.ndarray:
    """Place points of the model space on an embedding by k-nearest-neighbour regression.

    Each query point ``q`` (in the space of ``ref_rep``, e.g. PCA) goes to the weighted
    mean of the embedding coordinates of its ``k`` nearest observed cells, with weights
    ``1 / (distance + 1e-8 * median distance)`` (an exact match lands on its cell).  Points
    far from every observed cell land inside the hull of their neighbours: the map does
    not extrapolate.

    Parameters
    ----------
    ref_rep
        Observed cells in the model space, ``(n, d)``.
    ref_basis
        The same cells on the embedding, ``(n, e)``.
    query
        Points in the model space, ``(m, d)``.
    k
        Neighbours averaged.

    Returns
    -------
    numpy.ndarray
        ``(m, e)`` embedding coordinates.
    """
    ref_rep, ref_basis = np.asarray(ref_rep), np.asarray(ref_basis, dtype=np.float64)
    if ref_rep.shape[0] != ref_basis.shape[0]:
        raise ValueError(
            f"{ref_rep.shape[0]} cells in the model space but {ref_basis.shape[0]} on the basis"
        )
    if query.shape[-1] != ref_rep.shape[1]:
        raise ValueError(
            f"points have {query.shape[-1]} coordinates, the model space {ref_rep.shape[1]}"
        )
    flat = query.reshape(-1, query.shape[-1])
    dist, idx = neighbors(ref_rep, flat, k)
    eps = 1e-8 * max(float(np.median(dist)), 1e-12)
    w = 1.0 / (dist + eps)
    w /= w.sum(axis=1, keepdims=True)
    out = np.einsum("mk,mke->me", w, ref_basis[idx])
    return out.reshape(*query.shape[:-1], ref_basis.shape[1])


def embed_velocity(
    x_rep: np.ndarray,
    v_rep: np.ndarray,
    x_basis: np.ndarray,
    *,
    n_neighbors: int = 30,
    scale: float = 10.0,
) -> np.ndarray:
    """Project model-space velocities onto an embedding the way scVelo does.

    For cell ``i`` with neighbours ``j`` (in the model space), the transition probability
    is ``p_ij ∝ exp(scale * cos(v_i, x_j - x_i))``; the embedded velocity is
    ``sum_j p_ij u_ij - mean_j u_ij`` with ``u_ij`` the unit vector from ``i`` to ``j`` on
    the embedding (the second term removes the drift of a uniform choice of neighbour).

    Parameters
    ----------
    x_rep
        Cells in the model space, ``(n, d)``.
    v_rep
        Their velocities in the model space, ``(n, d)``.
    x_basis
        The cells on the embedding, ``(n, e)``.
    n_neighbors
        Neighbours each cell may move towards.
    scale
        Sharpness of the transition probabilities.

    Returns
    -------
    numpy.ndarray
        Embedded velocities, ``(n, e)``.
    """
    x_rep = np.asarray(x_rep, dtype=np.float64)
    v_rep = np.asarray(v_rep, dtype=np.float64)
    x_basis = np.asarray(x_basis, dtype=np.float64)
    if not x_rep.shape == v_rep.shape or x_rep.shape[0] != x_basis.shape[0]:
        raise ValueError(
            f"shapes do not match: cells {x_rep.shape}, velocities {v_rep.shape}, "
            f"basis {x_basis.shape}"
        )
    _, idx = neighbors(x_rep, x_rep, n_neighbors + 1)
    idx = idx[:, 1:]  # drop the cell itself
    disp = x_rep[idx] - x_rep[:, None, :]  # (n, k, d)
    dn = np.linalg.norm(disp, axis=2)
    vn = np.linalg.norm(v_rep, axis=1, keepdims=True)
    cos = np.einsum("nkd,nd->nk", disp, v_rep) / np.maximum(dn * vn, 1e-12)
    logits = scale * cos
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    de = x_basis[idx] - x_basis[:, None, :]
    de /= np.maximum(np.linalg.norm(de, axis=2, keepdims=True), 1e-12)
    return np.einsum("nk,nke->ne", p, de) - de.mean(axis=1)


def group_fractions(
    ref: np.ndarray, ref_codes: np.ndarray, n_groups: int, query: np.ndarray, *, k: int = 15
) -> np.ndarray:
    """Fraction of each group among the ``k`` nearest reference cells of each query point.

    Parameters
    ----------
    ref
        Reference cells, ``(n, d)``.
    ref_codes
        Their group codes in ``0 .. n_groups - 1``, ``(n,)``.
    n_groups
        Number of groups.
    query
        Points, ``(m, d)``.
    k
        Neighbours voting.

    Returns
    -------
    numpy.ndarray
        ``(m, n_groups)``; every row sums to 1.
    """
    _, idx = neighbors(ref, query, k)
    codes = np.asarray(ref_codes)[idx]  # (m, k)
    out = np.zeros((len(query), n_groups))
    np.add.at(out, (np.repeat(np.arange(len(query)), codes.shape[1]), codes.ravel()), 1.0)
    return out / codes.shape[1]


def basis_key(adata, basis: str) -> str:
    """The ``.obsm`` key of an embedding named with or without scanpy's ``"X_"`` prefix."""
    key = basis if basis in adata.obsm else f"X_{basis}"
    if key not in adata.obsm:
        raise ValueError(f"basis {basis!r} is not a key of adata.obsm: {list(adata.obsm)}")
    return key


def velocity_inputs(adata, basis: str, vkey: str):
    """Read what a velocity projection needs from ``adata`` (checked to match).

    Returns
    -------
    x_rep, v, x_emb, key
        Cells in the velocities' space ``(n, d)``, the velocities ``(n, d)``, the cells on
        the basis ``(n, 2)`` and scVelo's key for the projection (``f"{vkey}_{basis}"``).
    """
    from bioflow.data.anndata import read_representation

    if vkey not in adata.obsm:
        raise ValueError(f"adata.obsm has no {vkey!r}; run tl.velocity(model, adata) first")
    params = adata.uns.get("bioflow", {}).get(vkey, {})
    rep = params.get("use_rep", vkey[len("velocity_") :] if vkey.startswith("velocity_") else None)
    rep = None if rep in (None, "None", "X") else rep
    x_rep = read_representation(adata, rep)
    v = np.asarray(adata.obsm[vkey], dtype=np.float64)
    if v.shape != x_rep.shape:
        raise ValueError(
            f"adata.obsm[{vkey!r}] has shape {v.shape} but its space "
            f"({'X' if rep is None else rep}) has {x_rep.shape}: they do not match"
        )
    bkey = basis_key(adata, basis)
    x_emb = np.asarray(adata.obsm[bkey], dtype=np.float64)[:, :2]
    short = bkey[2:] if bkey.startswith("X_") else bkey
    return x_rep, v, x_emb, f"{vkey}_{short}"
