"""The organoid recipe on a fabricated table of exactly the published schema."""

import json
import subprocess
import sys
import warnings
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "data_recipes" / "organoid.py"
sys.path.insert(0, str(ROOT / "data_recipes"))
import organoid  # noqa: E402

PATIENTS = ["5", "11", "75", "141", "109", "27", "216", "99", "21", "23"]  # order in the file
CULTURES = ["PDO", "PDOF", "F"]
PLATES = {  # plate: (drugs, vehicle, replicates of drugs, vehicle-only replicates)
    "O": (["O"], "H2O", ["B", "C", "A"], []),
    "SLV": (["S", "VS", "L", "V"], "DMSO", ["B", "C", "A"], ["BB", "AA", "CC"]),
    "CSF": (["F", "C", "SF", "CS", "CF", "CSF"], "AH", ["B", "C", "A"], []),
}
N = 6  # cells per (experiment, treatment, concentration) group; --min-cells 5


def _fabricate(path: Path, patients=PATIENTS) -> pd.DataFrame:
    """A table with the 54 published columns, their dtypes and value conventions."""
    rng = np.random.default_rng(0)
    groups = []  # (culture, patient, plate, replicate, treatment, concentration, n)
    for culture in CULTURES:
        for patient in patients:
            for plate, (drugs, vehicle, reps, vonly) in PLATES.items():
                for rep in reps + vonly:
                    groups.append((culture, patient, plate, rep, vehicle, "0", N))
                    if rep in reps:
                        # two concentrations per drug; V's highest one is too small
                        for d in drugs:
                            groups.append((culture, patient, plate, rep, d, "1", N))
                            groups.append(
                                (culture, patient, plate, rep, d, "3", N if d != "V" else 2)
                            )
    g = pd.DataFrame(groups, columns=[*organoid.EXPERIMENT, "Treatment", "Concentration", "n"])
    meta = g.loc[g.index.repeat(g["n"])].drop(columns="n").reset_index(drop=True)
    n = len(meta)
    shift = np.where(meta["Treatment"].isin(organoid.DRUGS), 3.0, 0.0) * (
        1 + meta["Concentration"].astype(int).to_numpy()
    )
    x = rng.gamma(2.0, 1.0, (n, 44)) * (10.0 + shift)[:, None]
    table = pd.DataFrame(x.astype(np.float32), columns=list(organoid.MARKERS))
    cell_type = np.where(meta["Culture"] == "PDO", "PDOs", "Fibs").astype(object)
    mixed = (meta["Culture"] == "PDOF").to_numpy()
    cell_type[mixed] = np.array(["PDOs", "Fibs"], dtype=object)[rng.integers(0, 2, mixed.sum())]
    date = np.full(n, "20211119", dtype=object)
    date[-1] = 20220328  # the file mixes str and int dates
    table = table.assign(
        Date=date,
        Patient=meta["Patient"],
        Culture=meta["Culture"],
        Treatment=meta["Treatment"],
        Concentration=meta["Concentration"],
        Replicate=meta["Replicate"],
        Cell_type=cell_type,
        pPKCa=np.full(n, np.nan, dtype=np.float32),
        Plate=meta["Plate"],
        Batch=np.full(n, 2, dtype=np.int64),
    )[list(organoid.COLUMNS)]
    table.to_pickle(path)
    return table


@pytest.fixture(scope="module")
def fabricated(tmp_path_factory):
    path = tmp_path_factory.mktemp("org") / "Metadata_final_paper"
    return path, _fabricate(path)


def _run(*args):
    return subprocess.run(
        [sys.executable, str(RECIPE), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_schema_is_the_published_one(fabricated):
    _, table = fabricated
    assert table.shape[1] == 54 and len(organoid.MARKERS) == 44
    assert list(table.columns[:44]) == list(organoid.MARKERS)
    assert table["pPKCa"].isna().all()


def test_replicas_1_batch_ids_match_the_notebook(fabricated):
    _, table = fabricated
    meta = table[list(organoid.META)].astype(str)
    batches = organoid.replica_batches(meta)
    assert len(batches) == 90 and batches[0][0] == ("PDO", "5", "O")
    assert batches[1][1] == ["B", "C", "A", "BB", "AA", "CC"]
    val, test = organoid.replicas1_batch_ids(batches, np.random.RandomState(1))
    # recorded outputs of notebooks/trellis_data_replica_splits.ipynb
    assert val == [
        17,
        21,
        10,
        19,
        14,
        20,
        26,
        3,
        24,
        22,
        48,
        32,
        46,
        59,
        44,
        35,
        41,
        36,
        45,
        49,
        85,
        84,
        61,
        87,
        89,
        65,
        88,
        83,
        63,
        66,
    ]
    assert test == [
        23,
        4,
        2,
        25,
        6,
        18,
        13,
        7,
        27,
        1,
        40,
        33,
        51,
        38,
        55,
        42,
        54,
        31,
        37,
        50,
        68,
        81,
        70,
        74,
        67,
        62,
        82,
        64,
        60,
        75,
    ]


def test_recipe_end_to_end_into_fit_meta_flow(fabricated, tmp_path):
    import bioflow

    path, table = fabricated
    out = tmp_path / "o.h5ad"
    with pytest.raises(ValueError, match="--allow-pickle"):  # pickles need consent
        organoid.main(["--input", str(path), "--output", str(out), "--min-cells", "5"])
    with pytest.raises(SystemExit, match="checksum mismatch"):
        organoid.main(
            [
                "--input",
                str(path),
                "--output",
                str(out),
                "--min-cells",
                "5",
                "--allow-pickle",
                "--sha256",
                "0" * 64,
            ]
        )
    digest = organoid.sha256sum(path)
    organoid.main(
        [
            "--input",
            str(path),
            "--output",
            str(out),
            "--min-cells",
            "5",
            "--allow-pickle",
            "--sha256",
            digest,
        ]
    )
    a = ad.read_h5ad(out)
    assert list(a.var_names) == list(organoid.MARKERS) and "pPKCa" not in a.var_names
    assert np.isfinite(a.X).all()
    # vehicle-only replicates and too-small groups are gone; one vehicle per plate
    assert set(a.obs["replicate"]) == {"A", "B", "C"}
    for plate, vehicle in organoid.PLATE_VEHICLE.items():
        ctrl = a.obs.loc[(a.obs["plate"] == plate) & a.obs["is_control"], "treatment"]
        assert set(ctrl) == {vehicle}
    drugs = a.obs[~a.obs["is_control"]]
    # highest remaining concentration: '3', except V whose '3' group was too small
    assert set(drugs.loc[drugs["treatment"] != "V", "concentration"]) == {"3"}
    assert set(drugs.loc[drugs["treatment"] == "V", "concentration"]) == {"1"}
    assert a.obs["population"].nunique() == 3 * 10 * 3 * 3
    assert set(a.obs["cell_type"]) == {"PDOs", "Fibs"}
    # the reference's standardisation: arcsinh(x / 5), train mean, mean train sd
    u = a.uns["organoid"]
    cell = int(a.obs_names[0].removeprefix("cell"))
    raw = np.arcsinh(table.loc[cell, list(organoid.MARKERS)].to_numpy(float) / 5)
    np.testing.assert_allclose(
        a.X[0], (raw - u["train_mean"]) / u["train_scale"], rtol=1e-4, atol=1e-5
    )
    # the paper's splits
    exp = a.obs.groupby("population", observed=True).first()
    assert set(exp.loc[exp["split_pdo21"] == "test", "patient"]) == {"21"}
    assert set(exp.loc[exp["split_pdo75"] == "test", "patient"]) == {"75"}
    r1 = exp["split_replicas_1"].value_counts().to_dict()
    assert r1["val"] == 30 and r1["test"] == 30 and r1["train"] == 270 - 60
    r2 = exp[exp["split_replicas_2"] != "train"]
    assert set(r2.loc[r2["split_replicas_2"] == "val", "patient"]) == {"27"}
    assert set(r2.loc[r2["split_replicas_2"] == "test", "patient"]) == {"21"}
    assert (r2.groupby(["culture", "plate"], observed=True).size() == 2).all()
    manifest = json.loads(Path(str(out) + ".manifest.json").read_text())
    assert manifest["sources"][0]["doi"] == "10.17632/hc8gxwks3p.1"
    assert manifest["sources"][0]["verified_against_given_checksum"] is True
    # end to end: held-out patient 21, cell type into the encoder
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = bioflow.tl.fit_meta_flow(
            a,
            population_key="population",
            source_key="is_control",
            source_value=True,
            condition_key="treatment",
            encoder_key="cell_type",
            holdout_key="split_pdo21",
            holdout_value="test",
            max_steps=2,
            populations_per_step=2,
            cells_per_population=4,
            model_kwargs={
                "k": 3,
                "width": 16,
                "depth": 1,
                "embed_dim": 4,
                "encoder_hidden": (8,),
                "n_fourier": 4,
            },
            enable_progress_bar=False,
            logger=False,
            enable_model_summary=False,
        )
    held = sorted(exp.index[exp["split_pdo21"] == "test"])
    assert not set(held) & set(model.data_spec["populations"])
    assert model.data_spec["conditions"] == sorted(organoid.DRUGS)
    df = bioflow.tl.evaluate_populations(model, a, populations=held[:2], max_points=50)
    assert {"mean_mse", "n_target"} <= set(df.columns) and np.isfinite(df["w1"]).all()


def test_csv_input_and_schema_errors(fabricated, tmp_path):
    path, table = fabricated
    csv = tmp_path / "cells.csv"
    table[table["Patient"].isin(["5", "21"])].to_csv(csv, index=False)
    organoid.main(["--input", str(csv), "--output", str(tmp_path / "c.h5ad"), "--min-cells", "5"])
    c = ad.read_h5ad(tmp_path / "c.h5ad")
    assert set(c.obs["patient"]) == {"5", "21"} and c.n_vars == 44
    bad = tmp_path / "bad.csv"
    table.drop(columns=["Plate"]).head(50).to_csv(bad, index=False)
    with pytest.raises(ValueError, match="missing \\['Plate'\\]"):
        organoid.main(["--input", str(bad), "--output", str(tmp_path / "b.h5ad")])
    res = _run("--help")
    assert res.returncode == 0 and "arcsinh" in res.stdout and "pickle" in res.stdout
