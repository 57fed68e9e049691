"""Meta Flow Matching on the reference's protocols: encoder equivalence and speed-ups,
letters as the reference builds them, couplings, training schemes, screen API."""

import warnings

import numpy as np
import pandas as pd
import pytest
import torch

import bioflow
from bioflow.data.populations import (
    PopulationBatchDataset,
    PopulationDataModule,
    holdout_populations,
    read_populations,
)
from bioflow.datasets.letters import glyph_pixels
from bioflow.models import MetaFlowMatching
from bioflow.nn import KNNGraph, KNNGraphConv, PopulationEncoder, knn_indices

FAST = dict(enable_progress_bar=False, enable_model_summary=False, logger=False)
SMALL = {"k": 5, "width": 16, "depth": 1, "embed_dim": 4, "encoder_hidden": (8,), "n_fourier": 4}


def _fit_response(adata, **kwargs):
    """A tiny meta flow on ``population_response`` data (control -> treated cells)."""
    args = dict(
        population_key="population",
        source_key="treatment",
        source_value="control",
        condition_key="treatment",
        max_steps=1,
        populations_per_step=2,
        cells_per_population=8,
        model_kwargs=SMALL,
        **FAST,
    )
    return bioflow.tl.fit_meta_flow(adata, **{**args, **kwargs})


def test_knn_graph_conv_equals_torch_geometric_gcnconv():
    from torch_geometric.nn import GCNConv

    torch.manual_seed(0)
    x = torch.randn(40, 3)
    nb = knn_indices(x, 6)
    ours = KNNGraphConv(3, 5)
    ref = GCNConv(3, 5)
    with torch.no_grad():
        ref.lin.weight.copy_(ours.lin.weight)
        ours.bias.copy_(torch.randn(5))
        ref.bias.copy_(ours.bias)
    edge_index = torch.stack([nb.reshape(-1), torch.arange(40).repeat_interleave(6)])
    assert torch.allclose(ours(x, nb), ref(x, edge_index), atol=1e-5)
    # the narrow-first order (5 -> 3) and the gradient through the cached transpose
    down, ref_down = KNNGraphConv(5, 3), GCNConv(5, 3)
    with torch.no_grad():
        ref_down.lin.weight.copy_(down.lin.weight)
    h = torch.randn(40, 5, requires_grad=True)
    h2 = h.detach().clone().requires_grad_(True)
    down(h, KNNGraph(nb)).pow(2).sum().backward()
    ref_down(h2, edge_index).pow(2).sum().backward()
    assert torch.allclose(h.grad, h2.grad, atol=1e-5)


def test_knn_graph_block_diagonal_matches_separate_graphs():
    torch.manual_seed(1)
    xs = [torch.randn(12, 2), torch.randn(9, 2)]
    gs = [KNNGraph(knn_indices(x, 3)) for x in xs]
    joined = KNNGraph.block_diagonal(gs)
    h = torch.randn(21, 4)
    sep = torch.cat([g.propagate(p) for g, p in zip(gs, torch.split(h, [12, 9]), strict=True)])
    assert torch.allclose(joined.propagate(h), sep, atol=1e-6)
    assert torch.allclose(joined.transpose().to_dense(), joined.adjacency().to_dense().T)


def test_encoder_reference_options_and_extra_features():
    torch.manual_seed(0)
    with pytest.raises(ValueError, match="out_dim"):
        PopulationEncoder(2, hidden=(8, 8), out_dim=4, k=3, head=False)
    enc = PopulationEncoder(
        2, hidden=(8, 8), out_dim=8, k=3, head=False, final_activation=False, extra_dim=2
    )
    x = torch.randn(20, 2)
    types = torch.nn.functional.one_hot(torch.arange(20) % 2, 2).float()
    h = enc(x, extra=types)
    assert h.shape == (8,) and abs(float(h.norm()) - 1) < 1e-5
    # the cell-type input changes the embedding; the graph is built on x alone
    assert not torch.allclose(h, enc(x, extra=types.flip(1)))
    with pytest.raises(ValueError, match="extra"):
        enc(x)


def test_glyph_pixels_filled_with_counters():
    a = glyph_pixels("O")
    centre = (a.max(0) + a.min(0)) / 2
    # the counter of "O" is empty: no pixel near the centre
    assert np.linalg.norm(a - centre, axis=1).min() > 5
    sizes = {c: len(glyph_pixels(c)) for c in "AIWXY"}
    assert sizes["I"] == 730 and sizes["W"] == 2534 and sizes["I"] < sizes["A"] < sizes["W"]


def test_letters_reference_split_and_pairs():
    a = bioflow.datasets.letters(n_rotations=2, seed=3)
    per = a.obs.groupby("split", observed=True)["population"].nunique().to_dict()
    assert per == {"train": 48, "val": 2, "test": 2}
    assert set(a.obs.loc[a.obs["split"] == "val", "letter"]) == {"X"}
    assert set(a.obs.loc[a.obs["split"] == "test", "letter"]) == {"Y"}
    pop = a[a.obs["population"] == "Y_1"]
    src = pop.obsm["X_coords"][(pop.obs["state"] == "source").to_numpy()]
    tgt = pop.obsm["X_coords"][(pop.obs["state"] == "target").to_numpy()]
    assert len(src) == len(tgt) == len(glyph_pixels("Y"))
    # pair i: source = target + 0.5 N(0, I)
    d = src - tgt
    assert abs(d.std() - 0.5) < 0.05 and abs(d.mean()) < 0.05
    assert np.linalg.norm(tgt, axis=1).max() < 3 * np.sqrt(2) + 0.3  # [-3, 3] box, rotated


def _paired_letters():
    return bioflow.datasets.letters(letters="ABCD", n_rotations=2, n_points=40, seed=0)


def test_paired_batches_keep_pairs_and_cached_graphs():
    a = _paired_letters()
    ps = read_populations(a, "population", "state", "source", use_rep="X_coords", pair_key="pair")
    assert ps.paired
    ds = PopulationBatchDataset(ps, 3, 16, 30, 10, seed=0, knn_k=5, embed_draws=2)
    batch = next(iter(ds))
    assert batch["paired"] and isinstance(batch["src_nbrs"][0], KNNGraph)
    rows = batch["rows"].reshape(3, 2, 16)
    pair = a.obs["pair"].to_numpy()
    assert (pair[rows[:, 0]] == pair[rows[:, 1]]).all()
    # the pool's graphs are computed once: the same objects come back in later batches
    pool = ds.embed_pool()
    assert all(len(v) == 2 for v in pool.values())
    ids = {id(g) for v in pool.values() for _, g in v}
    later = next(iter(ds))
    assert all(id(g) in ids for g in later["src_nbrs"])


@pytest.mark.parametrize("coupling", ["independent", "paired", "exact"])
def test_couplings(coupling):
    torch.manual_seed(0)
    model = MetaFlowMatching(dim=2, method="fm", coupling=coupling, width=8, depth=1)
    x0 = torch.randn(2, 12, 2)
    x1 = x0 + 10.0 + 0.01 * torch.randn(2, 12, 2)
    batch = {"x0": x0, "x1": x1[:, torch.randperm(12)], "paired": False}
    if coupling == "paired":
        with pytest.raises(ValueError, match="pair_key"):
            model._pairs(x0, batch["x1"], batch, None)
        batch = {"x0": x0, "x1": x1, "paired": True}
        assert torch.equal(model._pairs(x0, x1, batch, None), x1)
    elif coupling == "exact":
        # shifted copies: exact OT recovers the matching
        assert torch.allclose(model._pairs(x0, batch["x1"], batch, None), x1)
    else:
        out = model._pairs(x0, x1, {"paired": True}, torch.Generator().manual_seed(0))
        assert not torch.equal(out, x1)  # pairs broken
        assert torch.allclose(out.sort(1).values, x1.sort(1).values)  # same cells


def test_alternating_training_updates_one_part_per_step():
    a = _paired_letters()
    model = bioflow.tl.fit_meta_flow(
        a,
        population_key="population",
        source_key="state",
        source_value="source",
        use_rep="X_coords",
        coupling="paired",
        pair_key="pair",
        max_steps=1,
        populations_per_step=2,
        cells_per_population=8,
        model_kwargs={**SMALL, "training": "alternating"},
        **FAST,
    )
    torch.manual_seed(0)  # fit_meta_flow initialises under the fit's seed
    init = MetaFlowMatching(**model.hparams)
    enc0 = list(init.encoder.parameters())
    # step 0 (even): field only
    assert all(torch.equal(a_, b_) for a_, b_ in zip(enc0, model.encoder.parameters()))
    assert any(
        not torch.equal(a_, b_) for a_, b_ in zip(init.net.parameters(), model.net.parameters())
    )
    model2 = bioflow.tl.fit_meta_flow(
        a,
        population_key="population",
        source_key="state",
        source_value="source",
        use_rep="X_coords",
        coupling="paired",
        pair_key="pair",
        max_steps=2,
        populations_per_step=2,
        cells_per_population=8,
        model_kwargs={**SMALL, "training": "alternating"},
        **FAST,
    )
    # step 1 (odd) moved the encoder away from where step 0 left it; the field kept step 0's
    assert any(not torch.equal(a_, b_) for a_, b_ in zip(enc0, model2.encoder.parameters()))
    assert all(
        torch.equal(a_, b_)
        for a_, b_ in zip(model.net.parameters(), model2.net.parameters(), strict=True)
    )


def test_holdout_by_column_and_mask_and_string_errors():
    a = _paired_letters()
    assert holdout_populations(a, "population", "letter", ["C", "D"]) == [
        "C_0",
        "C_1",
        "D_0",
        "D_1",
    ]
    mask = (a.obs["letter"] == "D").to_numpy()
    assert holdout_populations(a, "population", holdout_mask=mask) == ["D_0", "D_1"]
    half = mask & (a.obs["state"] == "source").to_numpy()
    with pytest.raises(ValueError, match="held out whole"):
        holdout_populations(a, "population", holdout_mask=half)
    keys = dict(
        population_key="population", source_key="state", source_value="source", use_rep="X_coords"
    )
    with pytest.raises(ValueError, match="write \\['A_0'\\]"):
        bioflow.tl.fit_meta_flow(a, **keys, exclude_populations="A_0", max_steps=1, **FAST)
    model = bioflow.tl.fit_meta_flow(
        a,
        **keys,
        holdout_key="letter",
        holdout_value="D",
        max_steps=1,
        populations_per_step=2,
        cells_per_population=8,
        model_kwargs=SMALL,
        **FAST,
    )
    assert not any(p.startswith("D") for p in model.data_spec["populations"])
    # one label is accepted where a list of populations is evaluated (not letter by letter)
    one = bioflow.tl.evaluate_populations(model, a, populations="D_0")
    assert set(one["population"]) == {"D_0", "mean", "weighted_mean"}


def _screen():
    a = bioflow.datasets.population_response(6, n_cells=40, dim=3, seed=2)
    # a drug given only to a held-out population, and a population without controls
    extra = a[(a.obs["population"] == "pop5") & (a.obs["treatment"] == "drugB")].copy()
    extra.obs["treatment"] = pd.Categorical(["drugC"] * extra.n_obs)
    extra.obs_names = [f"{n}-c" for n in extra.obs_names]
    import anndata as ad

    out = ad.concat([a, extra])
    out.obs["treatment"] = out.obs["treatment"].astype("category")
    drop = (out.obs["population"] == "pop4") & (out.obs["treatment"] == "control")
    return out[~drop.to_numpy()].copy()


def test_screen_small_population_unseen_condition_and_tables():
    a = _screen()
    keys = dict(
        population_key="population",
        source_key="treatment",
        source_value="control",
        condition_key="treatment",
    )
    with pytest.warns(UserWarning) as rec:
        model = _fit_response(a, exclude_populations=["pop5"], max_steps=2)
    msgs = [str(w.message) for w in rec]
    assert any("skipped 1 population" in m and "'pop4'" in m for m in msgs)
    assert any("drugC" in m and "held-out" in m for m in msgs)
    assert model.data_spec["conditions"] == ["drugA", "drugB"]
    with pytest.raises(ValueError, match="unknown condition 'drugC'"):
        bioflow.tl.predict_population(model, a[a.obs["population"] == "pop5"], condition="drugC")
    with pytest.raises(ValueError, match="'pop4' has no initial cells"):
        bioflow.tl.fit_meta_flow(
            a, **keys, on_small="raise", max_steps=1, model_kwargs=SMALL, **FAST
        )
    with pytest.raises(ValueError, match="\\['drugC'\\] of these populations were not seen"):
        bioflow.tl.evaluate_populations(model, a, populations=["pop5", "pop0"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        df = bioflow.tl.evaluate_populations(model, a, populations=["pop1", "pop0"])
    assert {"n_source", "n_target", "mean_mse", "mean_l2", "mean_l1"} <= set(df.columns)
    per = df[~df["population"].isin(["mean", "weighted_mean"])]
    assert set(per["condition"]) == {"drugA", "drugB"}
    assert (per["n_target"] == 40).all() and (per["n_source"] == 40).all()
    assert np.allclose(per["mean_l2"], np.sqrt(per["mean_mse"]))
    w = df[(df["population"] == "weighted_mean") & (df["method"] == "mfm")]
    m = df[(df["population"] == "mean") & (df["method"] == "mfm")]
    assert int(w["n_target"].iloc[0]) == int(per[per["method"] == "mfm"]["n_target"].sum())
    assert np.isclose(float(w["w1"].iloc[0]), float(m["w1"].iloc[0]))  # equal counts


def test_weighted_mean_weights_by_cells():
    a = bioflow.datasets.population_response(3, n_cells=30, dim=3, seed=4)
    # shrink the treated cells of pop2 to 8
    keep = ~((a.obs["population"] == "pop2") & (a.obs["treatment"] != "control")).to_numpy()
    keep[np.flatnonzero(~keep)[:8]] = True
    a = a[keep].copy()
    model = _fit_response(a, method="fm")
    df = bioflow.tl.evaluate_populations(model, a, populations=["pop0", "pop2"], baseline=False)
    per = df[df["population"].isin(["pop0", "pop2"])]
    w = per["n_target"].to_numpy(float)
    expect = float((per["w1"] * w).sum() / w.sum())
    got = float(df.loc[df["population"] == "weighted_mean", "w1"].iloc[0])
    assert np.isclose(got, expect) and not np.isclose(got, per["w1"].mean())


def test_predictions_unique_names_and_categoricals():
    a = bioflow.datasets.population_response(4, n_cells=30, dim=3, seed=1)
    model = _fit_response(a, method="fm")
    src = a[a.obs["population"] == "pop3"]
    pa = bioflow.tl.predict_population(model, src, condition="drugA")
    pb = bioflow.tl.predict_population(model, src, condition="drugB")
    import anndata as ad

    both = ad.concat([src, pa, pb])
    assert both.obs_names.is_unique
    assert isinstance(pa.obs["treatment"].dtype, pd.CategoricalDtype)
    assert isinstance(pa.obs["population"].dtype, pd.CategoricalDtype)
    assert (pa.obs["bioflow_source_cell"] == src.obs_names[src.obs["treatment"] == "control"]).all()


def test_write_predictions_population_with_slash(tmp_path):
    import anndata as ad

    a = bioflow.datasets.letters(letters="AB", n_rotations=2, n_points=30, seed=0)
    a.obs["population"] = a.obs["population"].astype(str).str.replace("_", "/")
    dm = PopulationDataModule(
        a,
        population_key="population",
        source_key="state",
        source_value="source",
        use_rep="X_coords",
        exclude_populations=["B/1"],
        predict_output=str(tmp_path / "p.h5ad"),
    )
    preds = [torch.zeros(len(b["rows"]), 2) for b in dm.predict_dataloader()]
    out = ad.read_h5ad(dm.write_predictions(preds))
    assert set(out.obs["population"]) == {"B/1"}


def test_encoder_key_reaches_the_encoder():
    a = bioflow.datasets.population_response(4, n_cells=30, dim=3, seed=1)
    model = _fit_response(a, encoder_key="cell_type")
    assert model.encoder.extra_dim == a.obs["cell_type"].nunique()
    pred = bioflow.tl.predict_population(model, a[a.obs["population"] == "pop1"], condition="drugA")
    assert pred.n_obs == 30
    b = a.copy()
    b.obs["cell_type"] = b.obs["cell_type"].cat.rename_categories(lambda c: c + "x")
    with pytest.raises(ValueError, match="unseen in training"):
        bioflow.tl.predict_population(model, b[b.obs["population"] == "pop1"], condition="drugA")


@pytest.mark.parametrize("basis", ["pca", "features"])
def test_populations_plot_bases_and_labels(basis):
    a = bioflow.datasets.population_response(3, n_cells=30, dim=4, seed=0)
    src = a[(a.obs["population"] == "pop0") & (a.obs["treatment"] == "control")]
    tgt = a[(a.obs["population"] == "pop0") & (a.obs["treatment"] == "drugA")]
    kw = {"dims": ("f2", 3)} if basis == "features" else {}
    axes = bioflow.pl.populations(src, tgt, tgt, basis=basis, title="pop0 drugA", show=False, **kw)
    if basis == "features":
        assert (axes[0].get_xlabel(), axes[0].get_ylabel()) == ("f2", "f3")
        np.testing.assert_allclose(axes[1].collections[0].get_offsets()[:, 0], tgt.X[:, 2])
    else:
        assert axes[0].get_xlabel().startswith("PC1 (") and axes[2].get_ylabel().startswith("PC2")
    assert axes[0].figure._suptitle.get_text() == "pop0 drugA"
    with pytest.raises(ValueError, match="'nope' not found"):
        bioflow.pl.populations(src, tgt, tgt, basis="features", dims=("nope", 0), show=False)
