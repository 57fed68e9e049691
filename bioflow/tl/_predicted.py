"""Predicted cells as an AnnData that scanpy can use: genes, embeddings, unique names."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from bioflow.data.embedding import knn_map, pca_decoder

# .obsm keys taken for 2-D / 3-D embeddings of the observed cells (UMAP, t-SNE, FA2, ...)
EMBEDDING_PREFIXES = ("X_umap", "X_tsne", "X_draw_graph", "X_phate", "X_diffmap", "X_mde")


def embedding_keys(adata, use_rep: str | None) -> list[str]:
    """The ``.obsm`` keys of ``adata`` that hold a low-dimensional embedding of its cells."""
    keys = []
    for key in adata.obsm:
        if key == use_rep or not str(key).startswith(EMBEDDING_PREFIXES):
            continue
        m = adata.obsm[key]
        if getattr(m, "ndim", 0) == 2 and m.shape[1] in (2, 3) and m.shape[0] == adata.n_obs:
            keys.append(key)
    return keys


def model_space(adata, use_rep: str | None) -> np.ndarray:
    """The observed cells in the model's space (``.obsm[use_rep]`` or ``.X``), dense."""
    from bioflow.data.anndata import read_representation

    return read_representation(adata, use_rep)


def predicted_anndata(
    adata,
    rows: np.ndarray,
    pred: np.ndarray,
    obs: pd.DataFrame,
    *,
    use_rep: str | None,
    var_names: list[str] | None,
    suffix: str,
    tool: str,
):
    """Build the AnnData of predicted cells (one per row of ``pred``).

    - ``.X``: the genes, when the model works on ``.X`` or when ``.obsm[use_rep]`` is the
      PCA of ``.X`` (decoded by :func:`~bioflow.data.embedding.pca_decoder`, a
      reconstruction); otherwise empty, with a warning that says how to get genes.
    - ``.obsm[use_rep]``: the predictions themselves; every embedding of ``adata``
      (``X_umap``, ...) gets the predicted cells placed by k-nearest-neighbour regression
      from the model space (:func:`~bioflow.data.embedding.knn_map`).
    - ``.var`` copied; ``.obs_names`` are the source cells' names plus ``suffix`` (unique
      against ``adata``); ``.obs["bioflow_source_cell"]`` keeps the source names;
      ``uns["<key>_colors"]`` of the categorical columns are copied.
    """
    import anndata as ad

    obs = obs.copy()
    obs["bioflow_source_cell"] = obs.index.astype(str)
    obs.index = pd.Index([f"{n}{suffix}" for n in obs.index.astype(str)])
    genes_note = ""
    if use_rep is None:
        var = (
            adata.var.copy()
            if list(map(str, adata.var_names)) == list(var_names or [])
            else (pd.DataFrame(index=var_names or None))
        )
        out = ad.AnnData(np.asarray(pred, dtype=np.float32), obs=obs, var=var)
    else:
        decoder, reason = pca_decoder(adata, use_rep)
        if decoder is not None:
            out = ad.AnnData(decoder.decode(pred), obs=obs, var=adata.var.copy())
            out.varm["PCs"] = np.asarray(adata.varm["PCs"]).copy()
            genes_note = "X is decoded from " + use_rep + " with varm['PCs'] (a reconstruction)"
        else:
            if adata.n_vars > 0:  # genes exist but cannot be reached from use_rep
                warnings.warn(f"{tool}: predictions stay in {use_rep!r}; {reason}", stacklevel=3)
            out = ad.AnnData(obs=obs)
            genes_note = reason
        out.obsm[use_rep] = np.asarray(pred, dtype=np.float32)
    keys = embedding_keys(adata, use_rep)
    if keys:
        ref = model_space(adata, use_rep)
        for key in keys:
            out.obsm[key] = knn_map(ref, np.asarray(adata.obsm[key]), pred).astype(np.float32)
    for col in out.obs.columns:
        colors = adata.uns.get(f"{col}_colors")
        if colors is not None and isinstance(out.obs[col].dtype, pd.CategoricalDtype):
            out.uns[f"{col}_colors"] = list(colors)
    if "pca" in adata.uns and "PCs" in out.varm:
        out.uns["pca"] = dict(adata.uns["pca"])
    out.uns["bioflow_genes"] = genes_note or "X holds the model's own features"
    return out
