"""NeurIPS 2022 multimodal single-cell integration data (CITE-seq, Multiome) as used by TorchCFM.

Fetches the preprocessed ``op_cite_inputs_0.h5ad`` or ``op_train_multi_targets_0.h5ad``
(Mendeley data set hhny5ff7yj), verifies its SHA-256, keeps donor 13176 at days 2, 3, 4 and
7, and writes an .h5ad with

- ``obs["day"]``: 2, 3, 4, 7 (numeric),
- ``obsm["X_pca"]``: 5 whitened PCs (the published protocol),
- ``obsm["X_pca50"]``, ``obsm["X_pca100"]``: 50 and 100 whitened PCs.

The PCs come from the file's ``obsm["X_pca"]`` when it has at least 100 columns, otherwise
they are computed (scanpy, arpack, seed 0) from ``X``.

Usage::

    python data_recipes/neurips2022_multimodal.py --modality cite --output data/cite.h5ad
    python data_recipes/neurips2022_multimodal.py --modality multiome \
        --input op_train_multi_targets_0.h5ad
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import base_parser, fetch, write_atomically, write_manifest  # noqa: E402
from embryoid_body import whiten  # noqa: E402

MENDELEY = "https://data.mendeley.com/public-files/datasets/hhny5ff7yj/files"
SOURCES = {
    "cite": {
        "file": "op_cite_inputs_0.h5ad",
        "url": f"{MENDELEY}/1862acf5-6294-4eb1-8644-d1c6d25e4126/file_downloaded",
        "sha256": "fa1d117df3d6c23e0b80a997a259bcac3a79ad27d581e1a6654e107c39885e4c",
    },
    "multiome": {
        "file": "op_train_multi_targets_0.h5ad",
        "url": f"{MENDELEY}/5f4b6e5b-f122-4f5a-8ede-0d188c5cf00c/file_downloaded",
        "sha256": "a16c28ef861503111bb2f4c6ab6b1d5ed3df07d49eb0baa7378515fc098af4d2",
    },
}
DAYS = (2, 3, 4, 7)
DONOR = 13176


def build(path: str | Path, donor: int = DONOR, days=DAYS):
    """The filtered AnnData with whitened 5/50/100-PC representations."""
    import anndata as ad

    src = ad.read_h5ad(path)
    for key in ("day", "donor"):
        if key not in src.obs:
            raise ValueError(f"{path} has no obs[{key!r}] (columns: {list(src.obs)})")
    keep = (src.obs["donor"].astype(str) == str(donor)).to_numpy() & np.isin(
        src.obs["day"].astype(float).to_numpy(), days
    )
    if not keep.any():
        raise ValueError(f"no cells of donor {donor} at days {days} in {path}")
    sub = src[keep].copy()
    if "X_pca" in sub.obsm and sub.obsm["X_pca"].shape[1] >= 100:
        pcs = np.asarray(sub.obsm["X_pca"][:, :100], dtype=np.float64)
        how = "obsm['X_pca'] of the source file"
    else:
        import scanpy as sc

        n = min(100, sub.n_vars - 1, sub.n_obs - 1)
        pcs = sc.pp.pca(
            np.asarray(sub.X.todense() if hasattr(sub.X, "todense") else sub.X, dtype=np.float32),
            n_comps=n,
            svd_solver="arpack",
            random_state=0,
        ).astype(np.float64)
        how = f"scanpy PCA ({n} comps, arpack, seed 0) of X"
    out = ad.AnnData(obs=sub.obs[["day", "donor"]].copy())
    out.obs["day"] = out.obs["day"].astype(float)
    full = whiten(pcs)
    out.obsm["X_pca"] = full[:, :5].copy()
    out.obsm["X_pca50"] = full[:, :50].copy()
    out.obsm["X_pca100"] = full
    return out, how


def main(argv=None) -> None:
    p = base_parser(__doc__, "data/cite.h5ad")
    p.add_argument("--modality", choices=sorted(SOURCES), default="cite")
    p.add_argument("--input", help="local copy of the source .h5ad instead of downloading")
    p.add_argument("--donor", type=int, default=DONOR)
    a = p.parse_args(argv)
    path, record = fetch(SOURCES[a.modality], a.input, a.cache_dir)
    adata, how = build(path, a.donor)
    adata.uns["bioflow_dataset"] = {
        "name": f"neurips2022_{a.modality}",
        "time_key": "day",
        "use_rep": "X_pca",
    }
    digest = write_atomically(lambda tmp: adata.write_h5ad(tmp), a.output, a.force)
    manifest = write_manifest(
        a.output,
        recipe=f"neurips2022_multimodal ({a.modality})",
        sources=[record],
        output_sha256=digest,
        steps=[
            f"keep donor {a.donor}, days {list(DAYS)}",
            f"PCs from {how}",
            "whiten each PC (zero mean, unit variance); X_pca = 5, X_pca50 = 50, "
            "X_pca100 = 100 PCs",
        ],
        extra={"n_cells": int(adata.n_obs)},
    )
    print(f"wrote {a.output} ({adata.n_obs} cells) and {manifest}")


if __name__ == "__main__":
    main()
