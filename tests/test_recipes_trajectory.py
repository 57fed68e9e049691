import json
import subprocess
import sys
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "data_recipes"


def _run(script, *args, check=True):
    res = subprocess.run(
        [sys.executable, str(RECIPES / script), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if check:
        assert res.returncode == 0, res.stderr[-2000:]
    return res


@pytest.fixture()
def fake_eb(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(5), 40)
    pcs = rng.normal(size=(200, 100)) * np.linspace(5, 0.1, 100) + labels[:, None]
    path = tmp_path / "eb_velocity_v5.npz"
    np.savez(path, pcs=pcs, sample_labels=labels)
    return path


def test_embryoid_body_recipe_offline(fake_eb, tmp_path):
    out = tmp_path / "eb.h5ad"
    _run("embryoid_body.py", "--input", fake_eb, "--output", out)
    a = ad.read_h5ad(out)
    assert a.n_obs == 200
    assert sorted(a.obs["day"].unique()) == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert a.obsm["X_pca"].shape == (200, 5) and a.obsm["X_pca"].dtype == np.float32
    assert a.obsm["X_pca100"].shape == (200, 100)
    assert np.allclose(a.obsm["X_pca"].std(0), 1, atol=1e-4)
    assert np.allclose(a.obsm["X_pca"].mean(0), 0, atol=1e-4)
    m = json.loads(Path(str(out) + ".manifest.json").read_text())
    assert m["sources"][0]["url"].endswith("eb_velocity_v5.npz")
    assert len(m["sources"][0]["sha256"]) == 64
    assert m["sources"][0]["verified_against_published_checksum"] is False
    assert m["cells_per_day"] == {"0.0": 40, "1.0": 40, "2.0": 40, "3.0": 40, "4.0": 40}
    assert "numpy" in m["versions"] and m["steps"]
    # same input again: identical output is accepted; a different file is refused
    _run("embryoid_body.py", "--input", fake_eb, "--output", out)
    np.savez(fake_eb, pcs=np.ones((10, 100)), sample_labels=np.arange(10) % 5)
    res = _run("embryoid_body.py", "--input", fake_eb, "--output", out, check=False)
    assert res.returncode != 0 and "different content" in res.stderr
    _run("embryoid_body.py", "--input", fake_eb, "--output", out, "--force")
    assert ad.read_h5ad(out).n_obs == 10


def test_embryoid_body_bad_input(tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, something=np.zeros(3))
    res = _run("embryoid_body.py", "--input", bad, "--output", tmp_path / "o.h5ad", check=False)
    assert res.returncode != 0 and "'pcs'" in res.stderr


@pytest.mark.parametrize("with_pca", [True, False])
def test_neurips_recipe_offline(tmp_path, with_pca):
    rng = np.random.default_rng(1)
    n = 600  # ~240 cells of donor 13176 at days 2-7: enough for 100 PCs
    obs = pd.DataFrame(
        {"day": rng.choice([2, 3, 4, 7, 10], n), "donor": rng.choice([13176, 31800], n)},
        index=[f"c{i}" for i in range(n)],
    )
    src = ad.AnnData(sp.csr_matrix(rng.poisson(1.0, (n, 150)).astype(np.float32)), obs=obs)
    if with_pca:
        src.obsm["X_pca"] = rng.normal(size=(n, 140)).astype(np.float32)
    path = tmp_path / "op_cite_inputs_0.h5ad"
    src.write_h5ad(path)
    out = tmp_path / "cite.h5ad"
    _run("neurips2022_multimodal.py", "--modality", "cite", "--input", path, "--output", out)
    a = ad.read_h5ad(out)
    keep = (obs["donor"] == 13176) & obs["day"].isin([2, 3, 4, 7])
    assert a.n_obs == int(keep.sum())
    assert set(a.obs["day"].unique()) <= {2.0, 3.0, 4.0, 7.0}
    assert a.obsm["X_pca"].shape == (a.n_obs, 5)
    assert a.obsm["X_pca50"].shape == (a.n_obs, 50)
    assert a.obsm["X_pca100"].shape[1] == 100
    m = json.loads(Path(str(out) + ".manifest.json").read_text())
    assert "donor 13176" in m["steps"][0]


def test_recipes_have_help():
    for script in ("embryoid_body.py", "neurips2022_multimodal.py"):
        res = _run(script, "--help")
        assert "--input" in res.stdout and "--force" in res.stdout


def test_trajectory_protocol_runs_on_simulated_file(tmp_path):
    path = tmp_path / "sim.h5ad"
    cmd = [
        sys.executable,
        str(ROOT / "benchmarks" / "trajectory_protocol.py"),
        str(path),
        "--write-simulated",
        "--seeds",
        "1",
        "--max-steps",
        "10",
        "--methods",
        "ot-cfm",
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "published EB" in res.stdout and "no-motion" in res.stdout
    payload = json.loads(res.stdout[res.stdout.index("{") :])
    assert set(payload["w1_mean"]) == {"ot-cfm", "no-motion", "mccann"}


def test_trajectory_protocol_skips_missing_file(tmp_path):
    cmd = [
        sys.executable,
        str(ROOT / "benchmarks" / "trajectory_protocol.py"),
        str(tmp_path / "absent.h5ad"),
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and "skipped" in res.stderr
