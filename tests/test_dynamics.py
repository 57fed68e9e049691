import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

import bioflow
from bioflow.metrics import wasserstein
from bioflow.models import CellFlowMatching

FAST = dict(enable_progress_bar=False)


def _gauss_shift(n=600, seed=0):
    rng = np.random.default_rng(seed)
    x = np.vstack([rng.normal(size=(n, 2)), rng.normal(size=(n, 2)) + [4.0, 0.0]])
    obs = pd.DataFrame({"t": np.repeat([0.0, 1.0], n)}, index=[f"c{i}" for i in range(2 * n)])
    a = ad.AnnData(obs=obs)
    a.obsm["X_emb"] = x.astype(np.float32)
    return a


def test_ot_cfm_learns_known_transport():
    adata = _gauss_shift()
    model = bioflow.tl.fit_dynamics(
        adata,
        time_key="t",
        use_rep="X_emb",
        max_steps=300,
        batch_size=128,
        model_kwargs={"hidden": (64, 64)},
        **FAST,
    )
    pred = bioflow.tl.predict_cells(model, adata, source_time=0.0, target_time=1.0)
    fresh = np.random.default_rng(9).normal(size=(600, 2)) + [4.0, 0.0]
    w1 = wasserstein(pred.obsm["X_emb"], fresh)
    assert w1 < 0.45, w1  # no motion gives ~4
    # OT-CFM learns the straight map x -> x + (4, 0): each cell moves by ~(4, 0)
    disp = pred.obsm["X_emb"] - adata.obsm["X_emb"][:600]
    assert np.abs(disp.mean(0) - [4.0, 0.0]).max() < 0.3
    assert disp.std(0).max() < 0.5


def test_fit_does_not_modify_adata(small_adata):
    before = small_adata.copy()
    bioflow.tl.fit_dynamics(small_adata, time_key="day", use_rep="X_pca", max_steps=5, **FAST)
    assert small_adata.obs.equals(before.obs)
    assert list(small_adata.obsm) == list(before.obsm)
    assert np.array_equal(small_adata.obsm["X_pca"], before.obsm["X_pca"])
    assert set(small_adata.uns) == set(before.uns)


@pytest.mark.parametrize("method", ["i-cfm", "ot-cfm", "sb-cfm", "w-cfm"])
def test_every_method_trains(small_adata, method):
    model = bioflow.tl.fit_dynamics(
        small_adata,
        time_key="time",
        use_rep="X_pca",
        method=method,
        max_steps=40,
        batch_size=32,
        **FAST,
    )
    assert model.method == method
    pred = bioflow.tl.predict_cells(model, small_adata, source_time=0.0, target_time=1.0)
    assert pred.obsm["X_pca"].shape == (120, 10)
    assert np.isfinite(pred.obsm["X_pca"]).all()


def test_fit_on_sparse_x_and_ordered_categorical(small_adata):
    a = small_adata.copy()
    a.X = sp.csr_matrix(a.X)
    model = bioflow.tl.fit_dynamics(a, time_key="day", max_steps=5, batch_size=16, **FAST)
    pred = bioflow.tl.predict_cells(model, a, source_time="day1", target_time="day3")
    assert pred.shape == (120, a.n_vars)
    assert list(pred.var_names) == list(a.var_names)
    assert (pred.obs["day"] == "day3").all()
    assert pred.obs["day"].cat.ordered


def test_trajectories_and_save_load(small_adata, tmp_path):
    a = small_adata.copy()
    model = bioflow.tl.fit_dynamics(a, time_key="time", use_rep="X_pca", max_steps=20, **FAST)
    bioflow.tl.trajectories(model, a, times=[4.0, 0.0, 2.0])
    traj = a.obsm["bioflow_trajectory"]
    assert traj.shape == (a.n_obs, 3, 10)
    at2 = (a.obs["time"] == 2.0).to_numpy()
    assert np.allclose(traj[at2, 2], a.obsm["X_pca"][at2])  # own time -> unchanged
    pred = bioflow.tl.predict_cells(model, a, source_time=0.0, target_time=4.0)
    at0 = (a.obs["time"] == 0.0).to_numpy()
    assert np.allclose(traj[at0, 0], pred.obsm["X_pca"], atol=1e-5)
    assert a.uns["bioflow"]["bioflow_trajectory"]["time_key"] == "time"
    out = bioflow.tl.trajectories(model, small_adata, times=[1.0], key_added="tr", copy=True)
    assert "tr" in out.obsm and "tr" not in small_adata.obsm

    model.save(tmp_path / "m.pt")
    loaded = CellFlowMatching.load(tmp_path / "m.pt")
    again = bioflow.tl.predict_cells(loaded, a, source_time=0.0, target_time=4.0)
    assert np.allclose(again.obsm["X_pca"], pred.obsm["X_pca"], atol=1e-6)
    generic = bioflow.load_model(tmp_path / "m.pt")
    assert isinstance(generic, CellFlowMatching)


def test_bad_checkpoints(tmp_path):
    p = tmp_path / "trunc.pt"
    model = CellFlowMatching(dim=2, hidden=(8,))
    model.save(p)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="could not read checkpoint"):
        CellFlowMatching.load(p)
    with pytest.raises(ValueError, match="no checkpoint"):
        CellFlowMatching.load(tmp_path / "missing.pt")
    torch.save({"state_dict": {}, "bioflow_model": "SomethingElse"}, tmp_path / "o.pt")
    with pytest.raises(ValueError, match="not a bioflow model"):
        CellFlowMatching.load(tmp_path / "o.pt")


def test_input_errors(small_adata):
    a = small_adata
    fit = bioflow.tl.fit_dynamics
    with pytest.raises(ValueError, match="time_key='nope'"):
        fit(a, time_key="nope", use_rep="X_pca")
    with pytest.raises(ValueError, match="use_rep='X_umap'"):
        fit(a, time_key="time", use_rep="X_umap")
    with pytest.raises(ValueError, match="exclude_times value 7"):
        fit(a, time_key="time", use_rep="X_pca", exclude_times=(7.0,))
    with pytest.raises(ValueError, match="need at least two times"):
        fit(a, time_key="time", use_rep="X_pca", exclude_times=(1.0, 2.0, 3.0, 4.0))
    one = a[a.obs["time"] == 0].copy()
    with pytest.raises(ValueError, match="1 distinct time"):
        fit(one, time_key="time", use_rep="X_pca")
    b = a.copy()
    b.obs["branch_time"] = b.obs["branch"].astype(str)
    with pytest.raises(ValueError, match="neither numeric nor an ordered"):
        fit(b, time_key="branch_time", use_rep="X_pca")
    b.obs["unordered"] = pd.Categorical(b.obs["day"].astype(str))
    with pytest.raises(ValueError, match="unordered categorical"):
        fit(b, time_key="unordered", use_rep="X_pca")
    b.obsm["X_pca"][3, 1] = np.nan
    b.obsm["X_pca"][5, 0] = np.inf
    with pytest.raises(ValueError, match="2 NaN/inf values in 2 cells"):
        fit(b, time_key="time", use_rep="X_pca")
    with pytest.raises(ValueError, match="unknown method"):
        fit(a, time_key="time", use_rep="X_pca", method="rectified", max_steps=1)


def test_predict_errors(small_adata):
    model = bioflow.tl.fit_dynamics(
        small_adata, time_key="time", use_rep="X_pca", max_steps=2, **FAST
    )
    with pytest.raises(ValueError, match="no cells with"):
        bioflow.tl.predict_cells(model, small_adata, source_time=9.0, target_time=1.0)
    b = small_adata.copy()
    b.obsm["X_pca"] = b.obsm["X_pca"][:, :5]
    with pytest.raises(ValueError, match="5 features; the model was fitted on 10"):
        bioflow.tl.predict_cells(model, b, source_time=0.0, target_time=1.0)


def test_evaluate_holdout_beats_no_motion():
    adata = bioflow.datasets.simulated_differentiation(n_cells_per_time=200, seed=3)
    df = bioflow.tl.evaluate_holdout(
        adata,
        time_key="time",
        use_rep="X_pca",
        methods=("ot-cfm",),
        holdout_times=(2.0,),
        max_steps=300,
        batch_size=128,
        **FAST,
    )
    assert set(df["method"]) == {"no-motion", "mccann", "ot-cfm"}
    w1 = df.set_index("method")["w1"]
    assert w1["ot-cfm"] < 0.75 * w1["no-motion"], df
    assert list(df.columns) == ["held_out", "method", "seed", "w1", "w2", "mmd"]
