import json
import subprocess
import sys
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest

RECIPE = Path(__file__).resolve().parents[1] / "data_recipes" / "organoid.py"


def _run(*args):
    return subprocess.run(
        [sys.executable, str(RECIPE), *map(str, args)], capture_output=True, text=True, timeout=120
    )


@pytest.fixture()
def table(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    # 2 patients x 2 replicates; PBS and drug X at 2 concentrations; one small group
    for patient in ("P1", "P2"):
        for rep in ("1", "2"):
            for treat, conc, n in (("PBS", 0.0, 30), ("X", 1.0, 30), ("X", 5.0, 30), ("Y", 5.0, 5)):
                rows.append(
                    pd.DataFrame(
                        {
                            "Culture": "org",
                            "Patient": patient,
                            "Plate": "p1",
                            "Replicate": rep,
                            "Treatment": treat,
                            "Concentration": conc,
                            **{f"m{j}": rng.gamma(2.0, 10.0, n) for j in range(4)},
                        }
                    )
                )
    path = tmp_path / "cells.csv"
    pd.concat(rows).to_csv(path, index=False)
    return path


def test_organoid_recipe_offline(table, tmp_path):
    out = tmp_path / "o.h5ad"
    res = _run("--input", table, "--output", out, "--min-cells", 20, "--n-markers", 4)
    assert res.returncode == 0, res.stderr[-2000:]
    a = ad.read_h5ad(out)
    raw = pd.read_csv(table)
    # 4 populations x (PBS + X at max concentration); Y is too small, X at 1.0 dropped
    assert a.n_obs == 4 * 60 and a.n_vars == 4
    assert set(a.obs["treatment"]) == {"PBS", "X"} and (a.obs["concentration"] != 1.0).all()
    assert a.obs["population"].nunique() == 4
    first = raw[(raw.Treatment == "PBS")].iloc[0]
    np.testing.assert_allclose(
        a.X[0], np.arcsinh(first[["m0", "m1", "m2", "m3"]].to_numpy(float) / 5), rtol=1e-5
    )
    assert set(a.obs.loc[a.obs["split_replicate"] == "test", "replicate"]) == {"2"}
    assert set(a.obs.loc[a.obs["split_patient"] == "test", "patient"]) == {"P2"}
    manifest = json.loads(Path(str(out) + ".manifest.json").read_text())
    assert manifest["sources"][0]["sha256"] and manifest["steps"] and manifest["versions"]
    # same output again is accepted; a different one is refused without --force
    assert (
        _run("--input", table, "--output", out, "--min-cells", 20, "--n-markers", 4).returncode == 0
    )
    res = _run("--input", table, "--output", out, "--min-cells", 10, "--n-markers", 4)
    assert res.returncode != 0 and "--force" in res.stderr
    assert (
        _run(
            "--input", table, "--output", out, "--min-cells", 10, "--n-markers", 4, "--force"
        ).returncode
        == 0
    )


def test_organoid_recipe_errors_and_help(table, tmp_path):
    res = _run("--input", table, "--output", tmp_path / "o.h5ad", "--min-cells", 20)
    assert res.returncode != 0 and "expected 43" in res.stderr
    res = _run(
        "--input",
        table,
        "--output",
        tmp_path / "o.h5ad",
        "--patient-column",
        "Donor",
        "--n-markers",
        0,
    )
    assert res.returncode != 0 and "'Donor'" in res.stderr
    res = _run("--help")
    assert res.returncode == 0 and "arcsinh" in res.stdout
