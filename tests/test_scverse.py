"""scverse-native results (issue 15): genes, embeddings, velocities, fates, plots, progress,
guard rails and the CLI's output."""

from __future__ import annotations

import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scanpy as sc

import bioflow
from bioflow.data.embedding import embed_velocity, group_fractions, knn_map, pca_decoder

QUIET = dict(enable_progress_bar=False)


@pytest.fixture(scope="module")
def fitted():
    """Built-in data through sc.pp.pca, a fake 2-D embedding and a short fit."""
    adata = bioflow.datasets.simulated_differentiation(n_cells_per_time=40, seed=1)
    sc.pp.pca(adata, n_comps=8)
    adata.obsm["X_umap"] = adata.obsm["X_latent"][:, :2] * 3.0 + 10.0
    model = bioflow.tl.fit_dynamics(
        adata, time_key="time", use_rep="X_pca", max_steps=40, batch_size=32, **QUIET
    )
    return adata, model


# --- 1. gene space --------------------------------------------------------------------------


def test_pca_decoder_inverts_scanpy_pca_and_rejects_changed_x():
    adata = bioflow.datasets.simulated_differentiation(n_cells_per_time=30, seed=0)
    sc.pp.pca(adata, n_comps=12)
    dec, why = pca_decoder(adata, "X_pca")
    assert dec is not None and why == ""
    x = np.asarray(adata.X, dtype=np.float64)
    z = adata.obsm["X_pca"]
    rec = dec.decode(z)
    # in the span of the loadings the reconstruction is exact: its projection is z again
    pcs = adata.varm["PCs"]
    assert np.allclose((rec - x.mean(0)) @ pcs, z, atol=1e-3)
    # and it is the best rank-12 approximation: better than the mean alone
    assert np.abs(rec - x).mean() < 0.8 * np.abs(x - x.mean(0)).mean()
    # a subset of cells still decodes (mean offset handled)
    sub, _ = pca_decoder(adata[adata.obs["time"] == 1.0], "X_pca")
    assert sub is not None
    # scaled components (the built-in X_pca: PC1 scaled to unit variance) decode too
    built = bioflow.datasets.simulated_differentiation(n_cells_per_time=30, seed=0)
    assert pca_decoder(built, "X_pca")[0] is not None
    # X changed after the PCA: refused with a reason that says how to get genes
    bad = adata.copy()
    bad.X = np.asarray(bad.X) + np.random.default_rng(0).normal(0, 1, bad.shape)
    dec, why = pca_decoder(bad, "X_pca")
    assert dec is None and "sc.pp.pca" in why and "residual" in why
    no_pcs = adata.copy()
    del no_pcs.varm["PCs"]
    assert "varm has no 'PCs'" in pca_decoder(no_pcs, "X_pca")[1]


def test_predict_cells_returns_genes_that_scanpy_can_use(fitted):
    adata, model = fitted
    pred = bioflow.tl.predict_cells(model, adata, source_time=1.0, target_time=2.0)
    assert pred.shape == (40, adata.n_vars)
    assert list(pred.var_names) == list(adata.var_names)
    assert pred.obsm["X_pca"].shape == (40, 8) and pred.obsm["X_umap"].shape == (40, 2)
    assert pred.obs_names.is_unique and not set(pred.obs_names) & set(adata.obs_names)
    assert (pred.obs["bioflow_source_cell"].isin(adata.obs_names)).all()
    # decoded genes project back onto the predicted PCs
    x_mean = np.asarray(adata.X).mean(0)
    assert np.allclose((pred.X - x_mean) @ adata.varm["PCs"], pred.obsm["X_pca"], atol=1e-3)
    both = ad.concat([adata, pred], label="origin")
    assert both.n_obs == adata.n_obs + 40 and both.n_vars == adata.n_vars
    # what sc.tl.ingest needs of a query: the reference's genes, in order, in .X (ingest
    # itself is not called: with this environment's pynndescent and numpy it fails even on
    # scanpy's own data), and projecting .X reproduces the query's PCA
    assert (pred.var_names == adata.var_names).all() and np.isfinite(pred.X).all()
    # the UMAP placement lies inside the observed cells' range
    lo, hi = adata.obsm["X_umap"].min(0), adata.obsm["X_umap"].max(0)
    assert ((pred.obsm["X_umap"] >= lo - 1e-6) & (pred.obsm["X_umap"] <= hi + 1e-6)).all()


def test_predictions_without_loadings_warn_how_to_get_genes(fitted):
    adata, model = fitted
    work = adata.copy()
    del work.varm["PCs"]
    with pytest.warns(UserWarning, match="predictions stay in 'X_pca'.*sc.pp.pca"):
        pred = bioflow.tl.predict_cells(model, work, source_time=0.0, target_time=1.0)
    assert pred.n_vars == 0 and pred.obsm["X_pca"].shape == (40, 8)


def test_predict_population_decodes_genes():
    pops = bioflow.datasets.population_response(n_populations=4, n_cells=120, dim=6, seed=0)
    sc.pp.pca(pops, n_comps=4)
    model = bioflow.tl.fit_meta_flow(
        pops,
        population_key="population",
        source_key="treatment",
        source_value="control",
        condition_key="treatment",
        use_rep="X_pca",
        exclude_populations=["pop3"],
        max_steps=5,
        model_kwargs={"k": 5, "width": 16},
        **QUIET,
    )
    src = pops[pops.obs["population"] == "pop3"]
    pred = bioflow.tl.predict_population(model, src, condition="drugA")
    assert pred.n_vars == pops.n_vars and pred.obsm["X_pca"].shape[1] == 4
    assert all(n.endswith("-pred-drugA") for n in pred.obs_names)


# --- 2. embeddings and velocities -----------------------------------------------------------


def test_knn_map_places_cells_on_themselves_and_interpolates():
    rng = np.random.default_rng(0)
    rep = rng.normal(size=(200, 5))
    emb = rep[:, :2] @ np.array([[2.0, 0.0], [0.0, -1.0]]) + 1.0
    assert np.allclose(knn_map(rep, emb, rep[:7], k=10), emb[:7], atol=1e-5)
    mid = 0.5 * (rep[0] + rep[1])
    out = knn_map(rep, emb, mid[None], k=2)
    # weighted mean of its two neighbours: within their bounding box
    box = emb[np.argsort(np.linalg.norm(rep - mid, axis=1))[:2]]
    assert (out >= box.min(0) - 1e-9).all() and (out <= box.max(0) + 1e-9).all()
    with pytest.raises(ValueError, match="coordinates"):
        knn_map(rep, emb, rng.normal(size=(3, 4)))


def test_trajectories_on_umap_and_refusal(fitted, tmp_path):
    import matplotlib.pyplot as plt

    adata, model = fitted
    work = adata.copy()
    bioflow.tl.trajectories(model, work, times=[0, 2, 4])
    assert work.obsm["bioflow_trajectory_umap"].shape == (work.n_obs, 3, 2)
    assert work.uns["bioflow"]["bioflow_trajectory"]["bases"] == ["X_umap"]
    # the starting point of each path is (close to) the cell's own UMAP position
    t0 = work.obs["time"].to_numpy() == 0.0
    assert np.allclose(
        work.obsm["bioflow_trajectory_umap"][t0, 0], work.obsm["X_umap"][t0], atol=1e-4
    )
    fig, ax = plt.subplots()
    got = bioflow.pl.trajectories(
        work, basis="X_umap", color="branch", path_color="black", ax=ax, show=False
    )
    assert got is ax and ax.get_xlabel() == "UMAP1"
    xs = np.concatenate([line.get_xdata() for line in ax.get_lines()])
    lo, hi = work.obsm["X_umap"][:, 0].min(), work.obsm["X_umap"][:, 0].max()
    assert xs.min() >= lo - 1e-6 and xs.max() <= hi + 1e-6, "paths drawn outside the UMAP"
    plt.close(fig)
    # computed on the fly when the embedding came after tl.trajectories
    del work.obsm["bioflow_trajectory_umap"]
    ax = bioflow.pl.trajectories(work, basis="umap", show=False)
    assert ax.get_xlabel() == "UMAP1"
    plt.close("all")
    # trajectories whose space does not match the model's representation are refused
    work.obsm["bioflow_trajectory"] = work.obsm["bioflow_trajectory"][:, :, :5]
    with pytest.raises(ValueError, match="do not match|not the same space"):
        bioflow.pl.trajectories(work, basis="X_umap", show=False)
    with pytest.raises(ValueError, match="not the same space"):
        bioflow.pl.trajectories(work, show=False)


def test_velocity_and_its_embedding(fitted):
    import matplotlib.pyplot as plt
    import torch

    adata, model = fitted
    work = adata.copy()
    bioflow.tl.velocity(model, work)
    v = work.obsm["velocity_X_pca"]
    x = torch.from_numpy(np.asarray(work.obsm["X_pca"][:3], dtype=np.float32))
    t = torch.tensor(work.obs["time"].to_numpy()[:3], dtype=torch.float32)
    with torch.no_grad():
        assert np.allclose(v[:3], model.velocity(t, x).numpy(), atol=1e-5)
    bioflow.tl.velocity_embedding(work, basis="umap")
    assert work.obsm["velocity_X_pca_umap"].shape == (work.n_obs, 2)
    ax = bioflow.pl.velocity_embedding_stream(work, basis="umap", color="branch", show=False)
    assert ax.get_xlabel() == "UMAP1" and ax.collections
    plt.close("all")


def test_embed_velocity_follows_the_flow_direction():
    # cells on a line, all moving right: the embedded velocity points right
    x = np.column_stack([np.linspace(0, 10, 101), np.zeros(101)])
    v = np.tile([1.0, 0.0], (101, 1))
    emb = embed_velocity(x, v, x * 2.0, n_neighbors=6)
    assert (emb[5:-5, 0] > 0.3).all() and np.abs(emb[:, 1]).max() < 1e-9
    emb_back = embed_velocity(x, -v, x, n_neighbors=6)
    assert (emb_back[5:-5, 0] < -0.3).all()


# --- 3. fate probabilities ------------------------------------------------------------------


def test_group_fractions_rows_sum_to_one():
    ref = np.array([[0.0], [0.1], [5.0], [5.1]])
    f = group_fractions(ref, np.array([0, 0, 1, 1]), 2, np.array([[0.05], [5.05]]), k=2)
    assert np.allclose(f, [[1, 0], [0, 1]])


def test_fate_probabilities(fitted, tmp_path):
    import matplotlib.pyplot as plt

    adata, model = fitted
    work = adata.copy()
    bioflow.tl.fate_probabilities(
        model, work, time_key="time", groupby="branch", target_time=4.0, n_neighbors=10
    )
    fates = work.obsm["fate_probabilities"]
    assert isinstance(fates, pd.DataFrame) and list(fates.columns) == ["upper", "lower"]
    early = work.obs["time"].to_numpy() <= 4.0
    assert np.allclose(fates.loc[early].sum(1), 1.0) and (fates.to_numpy()[early] >= 0).all()
    params = work.uns["bioflow"]["fate_probabilities"]
    assert params["groups"] == ["upper", "lower"] and params["stochastic"] is False
    assert params["n_samples"] == 1  # a deterministic flow is pushed once
    # observed cells at the target time: their own branch dominates their neighbourhood
    last = work.obs["time"].to_numpy() == 4.0
    own = work.obs["branch"].astype(str).to_numpy()[last]
    top = fates.loc[last].idxmax(axis=1).to_numpy()
    assert (top == own).mean() > 0.8
    axes = bioflow.pl.fate_probabilities(
        work, basis="umap", show=False, save=tmp_path / "fates.png"
    )
    assert [a.get_title() for a in axes] == ["fate: upper", "fate: lower"]
    assert all(a.get_xlabel() == "UMAP1" for a in axes)
    assert (tmp_path / "fates.png").stat().st_size > 0
    plt.close("all")
    with pytest.raises(ValueError, match="groupby"):
        bioflow.tl.fate_probabilities(model, work, time_key="time", groupby="nope", target_time=4.0)


def test_fate_probabilities_uses_a_stochastic_push_when_the_model_has_one(fitted):
    adata, model = fitted
    calls = []

    class Stochastic:
        """The fitted model with a push that takes stochastic=True (feature check)."""

        data_spec = model.data_spec
        solver, solver_steps = model.solver, model.solver_steps

        def push(self, x, times, *, method=None, steps=None, stochastic=False):
            calls.append(stochastic)
            out = model.push(x, times, method=method, steps=steps)
            return out + 0.3 * __import__("torch").randn_like(out)

    work = adata.copy()
    bioflow.tl.fate_probabilities(
        Stochastic(), work, time_key="time", groupby="branch", target_time=4.0, n_samples=3
    )
    assert calls and all(calls)
    assert work.uns["bioflow"]["fate_probabilities"]["n_samples"] == 3
    early = work.obs["time"].to_numpy() < 4.0
    assert np.allclose(work.obsm["fate_probabilities"].loc[early].sum(1), 1.0)


# --- 4. plots like scanpy -------------------------------------------------------------------


def test_show_follows_scanpy_autoshow_and_backend_is_left_alone(fitted, monkeypatch):
    import matplotlib
    import matplotlib.pyplot as plt

    adata, model = fitted
    work = adata.copy()
    bioflow.tl.trajectories(model, work, times=[0, 4])
    backend = matplotlib.get_backend()
    shown = []
    monkeypatch.setattr(plt, "show", lambda *a, **k: shown.append(1))
    old = sc.settings.autoshow
    try:
        sc.settings.autoshow = True
        assert bioflow.pl.trajectories(work, basis="umap") is None and shown == [1]
        sc.settings.autoshow = False
        assert bioflow.pl.trajectories(work, basis="umap") is not None and shown == [1]
        assert bioflow.pl.trajectories(work, basis="umap", show=True) is None
        assert shown == [1, 1]
    finally:
        sc.settings.autoshow = old
    assert matplotlib.get_backend() == backend
    plt.close("all")


def test_palettes_from_uns_and_scanpy_defaults_beyond_ten():
    import matplotlib.colors as mcolors
    from scanpy.plotting import palettes

    from bioflow.pl._utils import palette

    a = ad.AnnData(obs=pd.DataFrame({"g": pd.Categorical(list("abc") * 4)}))
    a.uns["g_colors"] = ["#ff0000", "#00ff00", "#0000ff"]
    assert palette(a, "g") == ["#ff0000", "#00ff00", "#0000ff"]
    many = ad.AnnData(obs=pd.DataFrame({"g": pd.Categorical([f"c{i}" for i in range(15)])}))
    cols = palette(many, "g")
    assert cols == list(palettes.default_20[:15])
    assert len({mcolors.to_hex(c) for c in cols}) == 15, "colours repeat"
    assert "g_colors" not in many.uns, "the palette must not be written into adata"


def test_populations_panels_are_labelled():
    import matplotlib.pyplot as plt

    pts = bioflow.datasets.letters(letters="A", n_rotations=1, n_points=30)
    axes = bioflow.pl.populations(pts, pts, pts, use_rep="X_coords", show=False)
    assert [a.get_xlabel() for a in axes] == ["X_coords[0]"] * 3
    assert axes[0].get_ylabel() == "X_coords[1]"
    plt.close("all")


# --- 5. training feedback -------------------------------------------------------------------


def test_history_validation_and_early_stopping():
    adata = bioflow.datasets.simulated_differentiation(n_cells_per_time=40, n_times=3, seed=0)
    model = bioflow.tl.fit_dynamics(
        adata,
        time_key="time",
        use_rep="X_pca",
        max_steps=1000,
        batch_size=16,
        validation_fraction=0.2,
        early_stopping=1,
        model_kwargs={"hidden": (16,), "lr": 0.0},
        **QUIET,
    )
    h = model.history
    assert {"train_loss", "val/w1"} <= set(h.columns) and h.index.name == "step"
    # lr = 0: validation never improves, so patience 1 stops after the second validation
    assert h.index.max() == 200 and h["val/w1"].notna().sum() == 2
    with pytest.raises(ValueError, match="validation_fraction"):
        bioflow.tl.fit_dynamics(
            adata, time_key="time", use_rep="X_pca", max_steps=2, early_stopping=True, **QUIET
        )
    with pytest.raises(ValueError, match="validation_fraction"):
        bioflow.tl.fit_dynamics(
            adata, time_key="time", use_rep="X_pca", max_steps=2, validation_fraction=1.5, **QUIET
        )


def test_every_fit_takes_validation_and_early_stopping():
    import inspect

    for fit in (
        bioflow.tl.fit_dynamics,
        bioflow.tl.fit_meta_flow,
        bioflow.tl.fit_sequence_flow,
        bioflow.tl.fit_sequence_classifier,
    ):
        params = inspect.signature(fit).parameters
        assert params["validation_fraction"].default == 0.0, fit.__name__
        assert params["early_stopping"].default is False, fit.__name__
    seqs, y = bioflow.datasets.motif_sequences(80, length=10, seed=0)
    clf = bioflow.tl.fit_sequence_classifier(
        seqs, y, max_steps=100, validation_fraction=0.25, **QUIET
    )
    assert clf.history["val/loss"].notna().sum() == 1


def test_one_progress_bar_and_no_global_state_left(capsys):
    import logging

    filters = list(__import__("warnings").filters)
    level = logging.getLogger("lightning.pytorch.utilities.rank_zero").level
    adata = bioflow.datasets.simulated_differentiation(n_cells_per_time=20, n_times=3, seed=0)
    bioflow.tl.fit_dynamics(
        adata,
        time_key="time",
        use_rep="X_pca",
        max_steps=150,
        batch_size=8,
        model_kwargs={"hidden": (8,)},
    )
    err = capsys.readouterr().err.replace("\r", "\n")
    bars = {line.split(":")[0] for line in err.splitlines() if "step" in line and "|" in line}
    assert bars == {"fit"}, err[-500:]
    assert "150/150" in err and "Epoch" not in err
    assert list(__import__("warnings").filters) == filters, "a fit left warning filters behind"
    assert logging.getLogger("lightning.pytorch.utilities.rank_zero").level == level


# --- 6. guard rails -------------------------------------------------------------------------


def test_continuous_time_is_refused_and_time_bins_bins_it():
    adata = bioflow.datasets.simulated_differentiation(n_cells_per_time=30, seed=0)
    rng = np.random.default_rng(0)
    adata.obs["pseudotime"] = adata.obs["time"] + rng.uniform(0, 0.9, adata.n_obs)
    with pytest.raises(ValueError, match="150 distinct values.*time_bins="):
        bioflow.tl.fit_dynamics(adata, time_key="pseudotime", use_rep="X_pca", max_steps=2, **QUIET)
    model = bioflow.tl.fit_dynamics(
        adata, time_key="pseudotime", use_rep="X_pca", time_bins=5, max_steps=3, **QUIET
    )
    spec = model.data_spec["time"]
    assert spec["kind"] == "binned" and spec["labels"] == [0, 1, 2, 3, 4]
    assert np.all(np.diff(spec["values"]) > 0)
    pred = bioflow.tl.predict_cells(model, adata, source_time=0, target_time=1)
    assert pred.n_obs == 30  # equal-count bins: 150 cells / 5
    assert np.allclose(pred.obs["pseudotime"], spec["values"][1])
    with pytest.raises(ValueError, match="time_bins"):
        bioflow.tl.fit_dynamics(
            adata,
            time_key="pseudotime",
            use_rep="X_pca",
            time_bins=[0.0, 1.0],
            max_steps=2,
            **QUIET,
        )


# --- 7. the CLI -----------------------------------------------------------------------------


def test_cli_help_is_short_and_lists_the_configs(capsys):
    from bioflow.cli import main

    main(["fit", "--help"])
    out = capsys.readouterr().out
    assert len(out.splitlines()) < 40
    assert "cells_simulated.yaml" in out and "seq_motif.yaml" in out and "--help-all" in out


def test_cli_prints_its_run_directory_and_names_a_bad_key(tmp_path, capsys):
    from bioflow.cli import main

    cfg = str(
        __import__("pathlib").Path(__file__).resolve().parents[1]
        / "configs"
        / "cells_simulated.yaml"
    )
    common = [
        "--config",
        cfg,
        "--data.init_args.dataset_kwargs",
        "{n_cells_per_time: 30}",
        "--trainer.default_root_dir",
        str(tmp_path),
        "--trainer.logger.init_args.save_dir",
        str(tmp_path),
        "--trainer.enable_model_summary",
        "false",
    ]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        main(["fit", *common, "--trainer.max_steps", "2", "--trainer.limit_val_batches", "0"])
    out = capsys.readouterr()
    run = str(tmp_path / "bioflow" / "version_0")
    assert f"bioflow: run directory {run}" in out.out
    assert f"finished at step 2; run directory {run}" in out.out
    for noise in ("GPU available", "TPU available", "litlogger", "Seed set", "Epoch 0"):
        assert noise not in out.out + out.err, noise
    assert not [w for w in caught if "args parameter" in str(w.message)]
    ckpt = tmp_path / "bioflow" / "version_0" / "checkpoints" / "last.ckpt"
    pred = tmp_path / "out" / "pred.h5ad"
    pred.parent.mkdir()
    main(
        [
            "predict",
            *common,
            "--ckpt_path",
            str(ckpt),
            "--data.predict_source_time",
            "1.0",
            "--data.predict_target_time",
            "2.0",
            "--data.predict_output",
            str(pred),
        ]
    )
    assert pred.exists()
    assert sorted(p.name for p in (tmp_path / "bioflow").iterdir()) == ["version_0"]
    with pytest.raises(ValueError) as err:
        main(["fit", *common, "--data.use_rep", "X_umap", "--trainer.max_steps", "1"])
    msg = str(err.value)
    assert "use_rep='X_umap'" in msg and "CellDynamicsDataModule" in msg
    assert "Namespace(" not in msg
