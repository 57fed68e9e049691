"""Organoid drug screen (Ramos Zapatero et al. 2023, Cell) for Meta Flow Matching.

Reads the single-cell mass-cytometry table of the screen (one row per cell: marker
intensities plus culture, patient, plate, replicate, treatment and concentration), and
writes an .h5ad with

- ``X``: the marker intensities after ``arcsinh(x / 5)`` (43 markers by default),
- ``obs["population"]``: ``culture_patient_plate_replicate``,
- ``obs["treatment"]`` (controls keep their label, e.g. ``"PBS"``) and
  ``obs["is_control"]``,
- only the highest concentration of every drug,
- only (population, treatment) groups with at least ``--min-cells`` cells (1000), and
  populations whose controls pass that bar,
- ``obs["split_replicate"]`` (``test`` for the held-out replicate) and
  ``obs["split_patient"]`` (``test`` for held-out patients).

The table is fetched from ``--url`` (the published data are on Mendeley Data, see
``SOURCE``; no checksum is published, so the manifest records the one computed) or read
from ``--input`` (a local .csv/.tsv/.parquet, optionally gzipped).

Usage::

    python data_recipes/organoid.py --input organoid_cells.csv.gz --output data/organoid.h5ad
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import base_parser, fetch, write_atomically, write_manifest  # noqa: E402

SOURCE = {
    "file": "organoid_screen_cells.csv.gz",
    "url": "https://data.mendeley.com/datasets/hc8gxwks3p",
    "sha256": None,
}
META = ("culture", "patient", "plate", "replicate", "treatment", "concentration")


def read_table(path: str | Path):
    """Read a .csv / .tsv / .parquet table (gzip allowed)."""
    import pandas as pd

    name = str(path).lower().removesuffix(".gz")
    if name.endswith(".parquet"):
        return pd.read_parquet(path)
    return pd.read_csv(path, sep="\t" if name.endswith((".tsv", ".txt")) else ",")


def build(
    table,
    *,
    columns: dict,
    control: str,
    min_cells: int,
    n_markers: int,
    test_replicate: str | None,
    test_patients: list[str] | None,
    cofactor: float = 5.0,
):
    """AnnData of the screen from a per-cell table (see the module docstring)."""
    import anndata as ad
    import pandas as pd

    missing = [f"{k} ({v!r})" for k, v in columns.items() if v not in table.columns]
    if missing:
        raise ValueError(
            f"the table lacks columns: {', '.join(missing)}; present: {list(table.columns)[:60]}"
        )
    meta_cols = set(columns.values())
    markers = [
        c for c in table.columns if c not in meta_cols and pd.api.types.is_numeric_dtype(table[c])
    ]
    if n_markers and len(markers) != n_markers:
        raise ValueError(
            f"found {len(markers)} numeric marker columns, expected {n_markers} "
            "(pass --n-markers 0 to accept any number)"
        )
    t = table.rename(columns={v: k for k, v in columns.items()}).reset_index(drop=True)
    for c in ("culture", "patient", "plate", "replicate", "treatment"):
        t[c] = t[c].astype(str)
    t["concentration"] = pd.to_numeric(t["concentration"], errors="coerce")
    is_ctrl = t["treatment"] == control
    if not is_ctrl.any():
        raise ValueError(f"no control cells (treatment == {control!r})")
    max_conc = t[~is_ctrl].groupby("treatment")["concentration"].max()
    keep = is_ctrl | (t["concentration"] == t["treatment"].map(max_conc))
    t = t[keep].copy()
    t["population"] = t[["culture", "patient", "plate", "replicate"]].agg("_".join, axis=1)
    size = t.groupby(["population", "treatment"])["treatment"].transform("size")
    t = t[size >= min_cells]
    ok_pops = set(t.loc[t["treatment"] == control, "population"])
    t = t[t["population"].isin(ok_pops)]
    if t.empty:
        raise ValueError(f"no population has >= {min_cells} control cells")
    x = np.arcsinh(t[markers].to_numpy(np.float64) / cofactor).astype(np.float32)
    if test_replicate is None:
        test_replicate = sorted(t["replicate"].unique())[-1]
    if test_patients is None:
        test_patients = [sorted(t["patient"].unique())[-1]]
    obs = t[
        ["population", "culture", "patient", "plate", "replicate", "treatment", "concentration"]
    ].copy()
    obs["is_control"] = (obs["treatment"] == control).to_numpy()
    obs["split_replicate"] = np.where(obs["replicate"] == str(test_replicate), "test", "train")
    obs["split_patient"] = np.where(
        obs["patient"].isin([str(p) for p in test_patients]), "test", "train"
    )
    obs.index = [f"cell{i}" for i in range(len(obs))]
    for c in (
        "population",
        "culture",
        "patient",
        "plate",
        "replicate",
        "treatment",
        "split_replicate",
        "split_patient",
    ):
        obs[c] = obs[c].astype("category")
    adata = ad.AnnData(x, obs=obs, var=pd.DataFrame(index=[str(m) for m in markers]))
    adata.uns["organoid"] = {
        "control": control,
        "cofactor": cofactor,
        "min_cells": min_cells,
        "test_replicate": str(test_replicate),
        "test_patients": [str(p) for p in test_patients],
    }
    return adata


def main(argv=None) -> None:
    p = base_parser(__doc__, "data/organoid.h5ad")
    p.add_argument("--input", help="local copy of the per-cell table (skips the download)")
    p.add_argument("--url", default=SOURCE["url"], help="where to download the table from")
    p.add_argument("--control", default="PBS", help="treatment label of the controls")
    p.add_argument("--min-cells", type=int, default=1000, help="cells per population/treatment")
    p.add_argument("--n-markers", type=int, default=43, help="expected markers (0: any)")
    p.add_argument("--test-replicate", default=None, help="held-out replicate (default: last)")
    p.add_argument(
        "--test-patients", nargs="*", default=None, help="held-out patients (default: the last one)"
    )
    for k in META:
        p.add_argument(
            f"--{k}-column",
            default=k.capitalize() if k != "concentration" else "Concentration",
            help=f"table column with the {k}",
        )
    a = p.parse_args(argv)
    src = dict(SOURCE, url=a.url)
    path, record = fetch(src, a.input, a.cache_dir)
    columns = {k: getattr(a, f"{k}_column") for k in META}
    adata = build(
        read_table(path),
        columns=columns,
        control=a.control,
        min_cells=a.min_cells,
        n_markers=a.n_markers,
        test_replicate=a.test_replicate,
        test_patients=a.test_patients,
    )
    digest = write_atomically(lambda tmp: adata.write_h5ad(tmp), a.output, a.force)
    steps = [
        f"read the per-cell table ({Path(path).name})",
        f"arcsinh(x / 5) on {adata.n_vars} markers",
        f"kept controls ({a.control!r}) and the highest concentration of each drug",
        "population = culture_patient_plate_replicate",
        f"kept (population, treatment) groups with >= {a.min_cells} cells and populations "
        "with enough controls",
        f"splits: replicate {adata.uns['organoid']['test_replicate']!r} and patients "
        f"{adata.uns['organoid']['test_patients']} held out",
    ]
    write_manifest(
        a.output,
        recipe="organoid",
        sources=[record],
        steps=steps,
        output_sha256=digest,
        extra={
            "n_obs": int(adata.n_obs),
            "n_vars": int(adata.n_vars),
            "populations": int(adata.obs["population"].nunique()),
        },
    )
    print(
        f"wrote {a.output}: {adata.n_obs} cells x {adata.n_vars} markers, "
        f"{adata.obs['population'].nunique()} populations"
    )


if __name__ == "__main__":
    main()
