"""Embryoid Body time course (Moon et al. 2019) as used by TrajectoryNet and TorchCFM.

Downloads TrajectoryNet's ``eb_velocity_v5.npz`` (100 PCs of ~16,800 cells over 5 time
windows, days 0-3, 6-9, 12-15, 18-21, 24-27), verifies its SHA-256, and writes an .h5ad with

- ``obs["day"]``: the time window index 0..4 (numeric),
- ``obsm["X_pca"]``: the first 5 PCs whitened (zero mean, unit variance per PC: the
  published leave-one-timepoint-out protocol),
- ``obsm["X_pca100"]``: all 100 PCs, whitened the same way.

With ``--expression`` it also fetches the Mendeley ``ebdata_v3.h5ad`` (gene expression,
``obs["sample_labels"]``) into the cache for users who need genes.

Usage::

    python data_recipes/embryoid_body.py --output data/eb.h5ad
    python data_recipes/embryoid_body.py --input eb_velocity_v5.npz --output data/eb.h5ad
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import base_parser, fetch, write_atomically, write_manifest  # noqa: E402

NPZ = {
    "file": "eb_velocity_v5.npz",
    "url": "https://raw.githubusercontent.com/KrishnaswamyLab/TrajectoryNet/master/data/"
    "eb_velocity_v5.npz",
    "sha256": "17623d16dd4fe7b679aad80916d130cb2863a4cd4ee742f139a3c2eed91ba230",
}
EXPRESSION = {
    "file": "ebdata_v3.h5ad",
    "url": "https://data.mendeley.com/public-files/datasets/hhny5ff7yj/files/"
    "d82698f4-d143-442f-9a41-10be8ad02584/file_downloaded",
    "sha256": None,
}


def whiten(x: np.ndarray) -> np.ndarray:
    """Zero mean and unit variance per column (sklearn's StandardScaler)."""
    sd = x.std(axis=0)
    return ((x - x.mean(axis=0)) / np.where(sd > 0, sd, 1.0)).astype(np.float32)


def build(npz_path: str | Path):
    """AnnData of the EB time course from ``eb_velocity_v5.npz``."""
    import anndata as ad
    import pandas as pd

    # allow_pickle=False: an object array in a downloaded file would otherwise be
    # unpickled, and unpickling runs code. The published file holds plain numeric arrays.
    try:
        data = np.load(npz_path, allow_pickle=False)
        arrays = {key: np.asarray(data[key]) for key in data.files}
    except ValueError as err:
        raise ValueError(
            f"{npz_path} holds pickled Python objects, which bioflow refuses to load (they "
            f"can run code); the published eb_velocity_v5.npz holds plain arrays: {err}"
        ) from err
    data = arrays
    for key in ("pcs", "sample_labels"):
        if key not in data:
            raise ValueError(f"{npz_path} has no {key!r} array (keys: {list(data.keys())})")
    pcs = np.asarray(data["pcs"], dtype=np.float64)
    labels = np.asarray(data["sample_labels"]).astype(int).ravel()
    if pcs.ndim != 2 or pcs.shape[0] != labels.shape[0] or pcs.shape[1] < 5:
        raise ValueError(f"unexpected shapes: pcs {pcs.shape}, sample_labels {labels.shape}")
    obs = pd.DataFrame(
        {"day": labels.astype(np.float64)}, index=[f"cell{i}" for i in range(len(labels))]
    )
    adata = ad.AnnData(obs=obs)
    full = whiten(pcs)
    adata.obsm["X_pca"] = full[:, :5].copy()
    adata.obsm["X_pca100"] = full
    adata.uns["bioflow_dataset"] = {"name": "embryoid_body", "time_key": "day", "use_rep": "X_pca"}
    return adata


def main(argv=None) -> None:
    p = base_parser(__doc__, "data/eb.h5ad")
    p.add_argument("--input", help="local eb_velocity_v5.npz instead of downloading")
    p.add_argument(
        "--expression",
        action="store_true",
        help="also fetch ebdata_v3.h5ad (gene expression) into --cache-dir",
    )
    a = p.parse_args(argv)
    npz, record = fetch(NPZ, a.input, a.cache_dir)
    sources = [record]
    if a.expression:
        sources.append(fetch(EXPRESSION, None, a.cache_dir)[1])
    adata = build(npz)
    digest = write_atomically(lambda tmp: adata.write_h5ad(tmp), a.output, a.force)
    manifest = write_manifest(
        a.output,
        recipe="embryoid_body",
        sources=sources,
        output_sha256=digest,
        steps=[
            "load pcs (n x 100) and sample_labels from eb_velocity_v5.npz",
            "whiten each PC to zero mean, unit variance (StandardScaler)",
            "obs['day'] = sample_labels; obsm['X_pca'] = first 5 whitened PCs; "
            "obsm['X_pca100'] = 100 whitened PCs",
        ],
        extra={
            "n_cells": int(adata.n_obs),
            "cells_per_day": {
                str(k): int(v) for k, v in adata.obs["day"].value_counts().sort_index().items()
            },
        },
    )
    print(f"wrote {a.output} ({adata.n_obs} cells) and {manifest}")


if __name__ == "__main__":
    main()
