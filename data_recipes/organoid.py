"""Organoid drug screen (Ramos Zapatero et al. 2023, Cell) for Meta Flow Matching.

Source: Ramos Zapatero M. (2022), "Ramos Zapatero et al. (Cancer-Associated Fibroblasts
Regulate Patient-Derived Organoid Drug Responses)", Mendeley Data, V1,
doi:10.17632/hc8gxwks3p.1 (https://data.mendeley.com/datasets/hc8gxwks3p/1).  The
dataset's archive (about 4.5 GB) holds ``Metadata_final_paper``: one row per cell,
24,756,030 cells x 54 columns -- 44 marker intensities, ``pPKCa`` (mostly NaN), and
``Date``, ``Patient``, ``Culture`` (PDO / PDOF / F), ``Treatment``, ``Concentration``
(level codes '0'-'4'), ``Replicate`` (A, B, C; vehicle-only AA, BB, CC), ``Cell_type``
(PDOs / Fibs), ``Plate`` (O / SLV / CSF) and ``Batch``.

SECURITY: ``Metadata_final_paper`` is a pandas *pickle*.  Unpickling a file runs code
chosen by whoever wrote it; read it only if you trust its origin and its checksum.  This
recipe is a step you run yourself on a file you chose to download; it reads a pickle
only with ``--allow-pickle``, and with ``--sha256`` it refuses a file whose SHA-256
differs (no checksum is published with the dataset: record the one of your first,
trusted download and pass it afterwards).  Better: convert once to parquet or CSV in a
sandbox and feed that (``--input cells.parquet``); those formats carry no code.

What it writes (the MFM reference's preprocessing, lazaratan/meta-flow-matching,
``notebooks/trellis_data_replica_splits.ipynb`` / ``trellis_data_3_pdo_splits.ipynb``):

- an *experiment* is (Culture, Patient, Plate, Replicate); within it, (Treatment,
  Concentration) groups with fewer than ``--min-cells`` (1000) cells are dropped, and an
  experiment survives only with a drug group and a vehicle group left -- so the
  vehicle-only replicates (AA, BB, CC) go;
- each plate has its own vehicle control (O: H2O, SLV: DMSO, CSF: AH): the experiment's
  vehicle cells are its initial cells (``obs["is_control"]``); every drug keeps only
  its highest remaining concentration;
- ``X``: the 44 markers (``pPKCa`` dropped) as ``arcsinh(x / 5)``, minus the per-marker
  mean and divided by the mean per-marker standard deviation, both computed on the
  training cells (all surviving concentrations) of ``--standardise-split``;
- ``obs``: ``population`` (``Culture_Patient_Plate_Replicate``), ``treatment``,
  ``concentration``, ``cell_type`` (give it to the encoder: ``encoder_key="cell_type"``),
  the other metadata, and the paper's splits as columns with values train / val / test:
  ``split_replicas_1`` (per culture, 10 (Culture, Patient, Plate) batches lend one
  replicate to validation and 10 to test, drawn with ``np.random.seed(1)`` as the
  notebook does), ``split_replicas_2`` (one replicate of every batch of patient 27 to
  validation, of patient 21 to test) and ``split_pdo21`` / ``split_pdo27`` /
  ``split_pdo75`` (every experiment of that patient to test).

Use::

    python data_recipes/organoid.py --input Metadata_final_paper --allow-pickle \\
        --sha256 <hex of your trusted copy> --output data/organoid.h5ad
    # then, e.g. the held-out patient 21 protocol:
    bioflow.tl.fit_meta_flow(adata, population_key="population", source_key="is_control",
        source_value=True, condition_key="treatment", encoder_key="cell_type",
        holdout_key="split_pdo21", holdout_value="test")
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import base_parser, sha256sum, write_atomically, write_manifest  # noqa: E402

SOURCE = {
    "doi": "10.17632/hc8gxwks3p.1",
    "landing_page": "https://data.mendeley.com/datasets/hc8gxwks3p/1",
    # Mendeley Data's "download all" archive of version 1 (not reachable from the machine
    # this recipe was written on; download it in a browser if the endpoint changed)
    "url": "https://data.mendeley.com/public-api/zip/hc8gxwks3p/download/1",
    "file": "Metadata_final_paper",
    "sha256": None,  # none is published
}
MARKERS = (
    "pHH3", "RFP", "mCHERRY", "Vimentin", "EpCAM", "CK18", "Pan_CK", "GFP", "IdU", "pPDK1",
    "cCaspase_3", "Geminin", "pMEK1_2", "pNDRG", "pMKK4_SEK1", "pBTK", "pSRC", "p4EBP1",
    "pRB", "pAKT308", "pCREB", "pSMAD1_5_9", "pAKT473", "pNF_kB", "pMKK3_MKK6", "pP38",
    "pMAPKAPK", "pAMPKa", "pBAD", "pHistone_H2A", "p90RSK", "pP120_catenin",
    "Beta_catenin_active", "pGSK", "pERK1_2", "pSMAD2_3", "PLK", "CHGA", "pDNAPK", "pS6",
    "CD90", "cPARP", "pCHK1", "Cyclin_B1",
)  # fmt: skip
META = ("Date", "Patient", "Culture", "Treatment", "Concentration", "Replicate", "Cell_type",
        "Plate", "Batch")  # fmt: skip
DROPPED = ("pPKCa",)
COLUMNS = (*MARKERS, *META[:7], "pPKCa", *META[7:])  # the file's order
VEHICLES = ("DMSO", "AH", "H2O")
DRUGS = ("O", "S", "VS", "L", "V", "F", "C", "SF", "CS", "CF", "CSF")
PLATE_VEHICLE = {"O": "H2O", "SLV": "DMSO", "CSF": "AH"}
EXPERIMENT = ("Culture", "Patient", "Plate", "Replicate")
SPLITS = ("replicas_1", "replicas_2", "pdo21", "pdo27", "pdo75")


def read_table(path: str | Path, *, allow_pickle: bool = False):
    """Read the per-cell table: .parquet, .csv / .tsv (gzip allowed), or a pandas pickle.

    A pickle (any other name, e.g. ``Metadata_final_paper``) is read only with
    ``allow_pickle=True``: unpickling runs code from the file.
    """
    import pandas as pd

    name = str(path).lower().removesuffix(".gz")
    if name.endswith(".parquet"):
        return pd.read_parquet(path)
    if name.endswith((".csv", ".tsv", ".txt")):
        sep = "," if name.endswith(".csv") else "\t"
        return pd.read_csv(path, sep=sep, dtype={c: str for c in META if c != "Batch"})
    if not allow_pickle:
        raise ValueError(
            f"{path} is not .parquet/.csv/.tsv; the published file is a pandas pickle, and "
            "unpickling runs code from the file. Pass --allow-pickle (with --sha256 of a "
            "trusted copy) to read it, or convert it to parquet in a sandbox first."
        )
    return pd.read_pickle(path)


def check_schema(table) -> None:
    """Raise ``ValueError`` unless ``table`` has the published 54 columns."""
    missing = [c for c in COLUMNS if c not in table.columns]
    extra = [c for c in table.columns if c not in COLUMNS]
    if missing or extra:
        raise ValueError(
            f"the table does not have the screen's schema: missing {missing}, unexpected "
            f"{extra} (expected the 54 columns of Metadata_final_paper)"
        )


def experiments(meta, min_cells: int):
    """Surviving experiments: ``{experiment key: {treatment: [concentration codes]}}``.

    Groups (Treatment, Concentration) of an experiment with fewer than ``min_cells``
    cells are dropped; an experiment is kept when a drug and a vehicle group remain.
    """
    sizes = meta.groupby([*EXPERIMENT, "Treatment", "Concentration"], sort=False).size()
    sizes = sizes[sizes >= min_cells]
    out: dict = {}
    for (*exp, treat, conc), _ in sizes.items():
        out.setdefault(tuple(exp), {}).setdefault(treat, []).append(conc)
    return {e: g for e, g in out.items() if set(g) & set(DRUGS) and set(g) & set(VEHICLES)}


def replica_batches(meta):
    """(Culture, Patient, Plate) batches in the notebooks' order, each with its replicates.

    The notebooks nest dictionaries over the values of each column in their order of
    first appearance in the whole table; a batch lists its replicates in that order too.
    """
    order = {c: list(dict.fromkeys(meta[c].tolist())) for c in EXPERIMENT}
    present = set(map(tuple, meta[list(EXPERIMENT)].drop_duplicates().to_numpy().tolist()))
    batches = []
    for cu in order["Culture"]:
        for pa in order["Patient"]:
            for pl in order["Plate"]:
                reps = [r for r in order["Replicate"] if (cu, pa, pl, r) in present]
                if reps:
                    batches.append(((cu, pa, pl), reps))
    return batches


def paper_splits(meta, kept: dict, n_val: int = 10, n_test: int = 10) -> dict:
    """``{split name: {experiment key: "train" | "val" | "test"}}`` for the paper's splits."""
    batches = replica_batches(meta)
    out = {}
    rng = np.random.RandomState(1)
    val_ids, test_ids = replicas1_batch_ids(batches, rng, n_val, n_test)
    out["replicas_1"] = _lend_replicates(batches, kept, set(val_ids), set(test_ids), rng)
    # replicas-2: one replicate of every batch of patient 27 (val) and 21 (test)
    rng = np.random.RandomState(1)
    val_ids = {i for i, ((_, pa, _), _) in enumerate(batches) if str(pa) == "27"}
    test_ids = {i for i, ((_, pa, _), _) in enumerate(batches) if str(pa) == "21"}
    out["replicas_2"] = _lend_replicates(batches, kept, val_ids, test_ids, rng)
    for patient in ("21", "27", "75"):
        out[f"pdo{patient}"] = {e: "test" if str(e[1]) == patient else "train" for e in kept}
    return out


def replicas1_batch_ids(batches, rng, n_val: int = 10, n_test: int = 10):
    """Batch indices lending a replicate to validation / test in the replicas-1 split.

    Per culture (in order), ``n_val + n_test`` of its batches are drawn without
    replacement; the first ``n_val`` go to validation.  With ``np.random.RandomState(1)``
    and the published table's 90 batches this gives the notebook's recorded ids.
    """
    by_culture: dict = {}
    for i, ((cu, _, _), _) in enumerate(batches):
        by_culture.setdefault(cu, []).append(i)
    val_ids, test_ids = [], []
    for ids in by_culture.values():
        nv, nt = (n_val, n_test) if len(ids) >= n_val + n_test else (len(ids) // 2,) * 2
        pick = rng.choice(ids, size=nv + nt, replace=False)
        val_ids += pick[:nv].tolist()
        test_ids += pick[nv:].tolist()
    return val_ids, test_ids


def _lend_replicates(batches, kept, val_ids, test_ids, rng) -> dict:
    split = {}
    for i, ((cu, pa, pl), reps) in enumerate(batches):
        batch = [(cu, pa, pl, r) for r in reps if (cu, pa, pl, r) in kept]
        if not batch:
            continue  # (never in the published table: every batch keeps a replicate)
        pop_id = rng.choice(len(batch))
        if i in val_ids:
            split[batch.pop(pop_id)] = "val"
        if i in test_ids:
            split[batch.pop(pop_id)] = "test"
        for e in batch:
            split[e] = "train"
    return split


def build(
    table, *, min_cells: int = 1000, cofactor: float = 5.0, standardise_split: str = "replicas_1"
):
    """AnnData of the screen from the per-cell table (see the module docstring)."""
    import anndata as ad
    import pandas as pd

    check_schema(table)
    if standardise_split not in SPLITS:
        raise ValueError(f"standardise_split must be one of {SPLITS}, got {standardise_split!r}")
    meta = pd.DataFrame({c: table[c].astype(str).to_numpy() for c in META})
    plates = sorted(set(meta["Plate"]) - set(PLATE_VEHICLE))
    if plates:
        raise ValueError(f"unknown plates {plates}; expected {sorted(PLATE_VEHICLE)}")
    for plate, vehicle in PLATE_VEHICLE.items():
        on_plate = set(meta.loc[meta["Plate"] == plate, "Treatment"]) & set(VEHICLES)
        if on_plate - {vehicle}:
            raise ValueError(
                f"plate {plate!r} carries vehicles {sorted(on_plate)}; expected only {vehicle!r}"
            )
    kept = experiments(meta, min_cells)
    if not kept:
        raise ValueError(f"no experiment has a drug and a vehicle group of >= {min_cells} cells")
    splits = paper_splits(meta, kept)
    exp_key = pd.MultiIndex.from_frame(meta[list(EXPERIMENT)])
    bad = sorted(set(meta["Concentration"]) - {"0", "1", "2", "3", "4"})
    if bad:
        raise ValueError(f"Concentration holds {bad}; expected the level codes '0'-'4'")
    groups = {(*e, t, c) for e, g in kept.items() for t, cs in g.items() for c in cs}
    full_key = pd.MultiIndex.from_frame(meta[[*EXPERIMENT, "Treatment", "Concentration"]])
    in_group = full_key.isin(list(groups))
    # highest surviving concentration of each drug (vehicles keep their '0')
    top = {
        (*e, t): str(max(int(c) for c in cs)) if t in DRUGS else cs[0]
        for e, g in kept.items()
        for t, cs in g.items()
    }
    key3 = pd.MultiIndex.from_frame(meta[[*EXPERIMENT, "Treatment"]])
    top_conc = pd.Series(list(top.values()), index=pd.MultiIndex.from_tuples(list(top)))
    wanted = top_conc.reindex(key3).to_numpy()
    keep = in_group & (meta["Concentration"].to_numpy() == wanted)
    rows = np.flatnonzero(in_group)  # every surviving concentration
    raw = np.arcsinh(table[list(MARKERS)].to_numpy()[rows].astype(np.float64) / cofactor)
    if not np.isfinite(raw).all():
        raise ValueError("marker values of kept cells are not finite (NaN or inf)")
    std_split = splits[standardise_split]
    train_exp = [e for e, s in std_split.items() if s == "train"]
    is_train = exp_key[rows].isin(train_exp)
    mean = raw[is_train].mean(0, keepdims=True)
    scale = float(raw[is_train].std(0).mean())
    x = ((raw[keep[rows]] - mean) / scale).astype(np.float32)
    m = meta[keep].reset_index(drop=True)
    obs = pd.DataFrame(
        {
            "population": m[list(EXPERIMENT)].agg("_".join, axis=1),
            "culture": m["Culture"],
            "patient": m["Patient"],
            "plate": m["Plate"],
            "replicate": m["Replicate"],
            "treatment": m["Treatment"],
            "concentration": m["Concentration"],
            "cell_type": m["Cell_type"],
            "date": m["Date"],
            "batch": m["Batch"],
        }
    )
    obs["is_control"] = obs["treatment"].isin(VEHICLES).to_numpy()
    for name in SPLITS:
        by_pop = {"_".join(e): v for e, v in splits[name].items()}
        obs[f"split_{name}"] = obs["population"].map(by_pop).to_numpy()
    obs.index = [f"cell{i}" for i in np.flatnonzero(keep)]
    for c in obs.columns:
        if c != "is_control":
            obs[c] = obs[c].astype("category")
    adata = ad.AnnData(x, obs=obs, var=pd.DataFrame(index=list(MARKERS)))
    adata.uns["organoid"] = {
        "cofactor": cofactor,
        "min_cells": min_cells,
        "plate_vehicle": dict(PLATE_VEHICLE),
        "standardise_split": standardise_split,
        "train_mean": mean.ravel().astype(np.float32),
        "train_scale": scale,
        "experiments": {
            name: {
                s: int(sum(v == s for v in splits[name].values())) for s in ("train", "val", "test")
            }
            for name in SPLITS
        },
    }
    return adata


def main(argv=None) -> None:
    p = base_parser(__doc__, "data/organoid.h5ad")
    p.add_argument(
        "--input",
        required=True,
        help="your copy of the per-cell table (.parquet, .csv, or the pickle "
        f"{SOURCE['file']!r} from doi:{SOURCE['doi']} with --allow-pickle)",
    )
    p.add_argument(
        "--allow-pickle",
        action="store_true",
        help="read a pandas pickle (runs code from the file: trusted copies only)",
    )
    p.add_argument("--sha256", default=None, help="refuse the input unless its SHA-256 matches")
    p.add_argument(
        "--min-cells",
        type=int,
        default=1000,
        help="cells per (experiment, treatment, concentration) group",
    )
    p.add_argument(
        "--standardise-split",
        default="replicas_1",
        choices=SPLITS,
        help="split whose training cells give the mean and scale",
    )
    a = p.parse_args(argv)
    path = Path(a.input)
    if not path.exists():
        raise SystemExit(f"--input {a.input!r} does not exist")
    digest = sha256sum(path)
    if a.sha256 is not None and digest != a.sha256.lower():
        raise SystemExit(f"checksum mismatch for {path}: expected {a.sha256}, got {digest}")
    if a.allow_pickle and a.sha256 is None:
        print(
            "warning: reading a pickle without --sha256; make sure you trust this file",
            file=sys.stderr,
        )
    adata = build(
        read_table(path, allow_pickle=a.allow_pickle),
        min_cells=a.min_cells,
        standardise_split=a.standardise_split,
    )
    out_digest = write_atomically(lambda tmp: adata.write_h5ad(tmp), a.output, a.force)
    record = {
        **SOURCE,
        "file": str(path),
        "sha256": digest,
        "verified_against_given_checksum": a.sha256 is not None,
    }
    steps = [
        f"read {path.name} ({'pickle' if a.allow_pickle else 'table'}); 54 columns checked",
        "experiments = (Culture, Patient, Plate, Replicate); (Treatment, Concentration) "
        f"groups with < {a.min_cells} cells dropped; experiments without a drug and a "
        "vehicle group dropped (vehicle-only replicates AA/BB/CC go)",
        f"vehicle per plate {PLATE_VEHICLE}; highest surviving concentration per drug",
        f"X = (arcsinh(x / 5) - train mean) / mean train sd over the 44 markers "
        f"({a.standardise_split} training cells); pPKCa dropped",
        "splits: replicas_1, replicas_2, pdo21, pdo27, pdo75 (train / val / test)",
    ]
    write_manifest(
        a.output,
        recipe="organoid",
        sources=[record],
        steps=steps,
        output_sha256=out_digest,
        extra={
            "n_obs": int(adata.n_obs),
            "n_vars": int(adata.n_vars),
            "populations": int(adata.obs["population"].nunique()),
            "experiments_per_split": adata.uns["organoid"]["experiments"],
        },
    )
    print(
        f"wrote {a.output}: {adata.n_obs} cells x {adata.n_vars} markers, "
        f"{adata.obs['population'].nunique()} populations"
    )


if __name__ == "__main__":
    main()
