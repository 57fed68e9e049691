import numpy as np
import pytest
import torch

import bioflow
from bioflow.data.populations import PopulationDataModule, read_populations
from bioflow.models import MetaFlowMatching, load_model
from bioflow.nn import PopulationEncoder, knn_edges

FAST = dict(enable_progress_bar=False)
KEYS = dict(
    population_key="population", source_key="state", source_value="source", use_rep="X_coords"
)
SMALL = {
    "k": 8,
    "width": 32,
    "depth": 1,
    "embed_dim": 8,
    "encoder_hidden": (16,),
    "n_fourier": 8,
    "solver_steps": 4,
}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # tiny networks: extra intra-op threads only add contention on a shared 2-core CPU
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def letters_small():
    return bioflow.datasets.letters(letters="ABC", n_rotations=2, n_points=60, seed=3)


@pytest.fixture(scope="module")
def fitted(letters_small):
    return bioflow.tl.fit_meta_flow(
        letters_small,
        **KEYS,
        exclude_populations=["C_1"],
        max_steps=3,
        populations_per_step=2,
        cells_per_population=16,
        model_kwargs=SMALL,
        **FAST,
    )


def test_knn_edges_hand_solved():
    x = torch.tensor([[0.0], [1.0], [3.0], [10.0]])
    e = knn_edges(x, k=1, chunk_size=2)
    # nearest neighbour of 0 is 1, of 1 is 0, of 3 is 1, of 10 is 3
    assert e[0].tolist() == [1, 0, 1, 2]
    assert e[1].tolist() == [0, 1, 2, 3]


def test_embedding_invariant_to_cell_order_and_unit_norm():
    torch.manual_seed(0)
    enc = PopulationEncoder(3, hidden=(16, 16), out_dim=8, k=5)
    x = torch.randn(60, 3)
    h = enc(x)
    assert torch.allclose(h, enc(x[torch.randperm(60)]), atol=1e-5)
    assert abs(float(h.norm()) - 1.0) < 1e-5
    # batched embedding equals one-by-one embedding
    y = torch.randn(40, 3) * 2 + 1
    both = enc([x, y])
    assert torch.allclose(both[0], h, atol=1e-5) and torch.allclose(both[1], enc(y), atol=1e-5)


def test_different_populations_get_different_embeddings():
    torch.manual_seed(0)
    enc = PopulationEncoder(2, hidden=(16, 16), out_dim=8, k=5)
    a = torch.randn(80, 2)
    b = torch.randn(80, 2) * 0.3 + torch.tensor([3.0, -2.0])
    ha, hb = enc(a), enc(b)
    assert float((ha - hb).norm()) > 0.05
    # a fresh sample of the same distribution is closer than the other population
    assert float((ha - enc(torch.randn(80, 2))).norm()) < float((ha - hb).norm())


def test_encoder_rejects_small_population():
    enc = PopulationEncoder(2, hidden=(8,), out_dim=4, k=10)
    with pytest.raises(ValueError, match="k \\+ 1 = 11"):
        enc(torch.randn(10, 2))


def test_datamodule_batches_and_rank_shards(letters_small):
    ps = read_populations(letters_small, "population", "state", "source", use_rep="X_coords")
    assert len(ps.problems) == 6 and ps.conditions == []
    dm = PopulationDataModule(
        ps, populations_per_step=4, cells_per_population=10, embed_cells=30, steps_per_epoch=2
    )
    batch = next(iter(dm.train_dataloader()))
    assert batch["x0"].shape == (4, 10, 2) and batch["x1"].shape == (4, 10, 2)
    assert len(batch["src"]) == 4 and all(s.shape == (30, 2) for s in batch["src"])
    ds = dm.train_dataloader().dataset
    shards = [ds.shard(r, 4) for r in range(4)]
    names = [p.population for s in shards for p in s]
    assert sorted(names) == sorted(p.population for p in ps.problems)  # disjoint cover


def test_fit_predict_and_save_load_identical(tmp_path, letters_small, fitted):
    before = letters_small.copy()
    src = letters_small[letters_small.obs["population"] == "C_1"]
    pred = bioflow.tl.predict_population(fitted, src)
    assert pred.n_obs == 60 and pred.obsm["X_coords"].shape == (60, 2)
    assert np.isfinite(pred.obsm["X_coords"]).all()
    fitted.save(tmp_path / "m.pt")
    again = load_model(tmp_path / "m.pt")
    assert isinstance(again, MetaFlowMatching) and again.method == "mfm"
    pred2 = bioflow.tl.predict_population(again, src)
    np.testing.assert_array_equal(pred.obsm["X_coords"], pred2.obsm["X_coords"])
    assert letters_small.obs.equals(before.obs)  # the input is not modified


def test_evaluate_populations_table(letters_small, fitted):
    df = bioflow.tl.evaluate_populations(fitted, letters_small, populations=["C_1"])
    assert set(df["method"]) == {"mfm", "no-motion"}
    assert (df["population"] == "mean").sum() == 2
    assert (df[["w1", "w2", "mmd"]] >= 0).all().all()
    assert (df["w2"] >= df["w1"] - 1e-6).all()  # W2 >= W1
    assert df["r"].isna().all()  # 2 features: no correlation r
    with pytest.raises(ValueError, match="'Q_9'"):
        bioflow.tl.evaluate_populations(fitted, letters_small, populations=["Q_9"])


def test_population_without_source_cells(letters_small):
    a = letters_small[
        ~((letters_small.obs["population"] == "B_0") & (letters_small.obs["state"] == "source"))
    ].copy()
    with pytest.raises(ValueError, match="'B_0' has no initial cells"):
        bioflow.tl.fit_meta_flow(
            a, **KEYS, max_steps=1, model_kwargs=SMALL, on_small="raise", **FAST
        )
    # default: skipped with one warning naming it, the others train
    with pytest.warns(UserWarning, match="skipped 1 population.*'B_0'"):
        model = bioflow.tl.fit_meta_flow(a, **KEYS, max_steps=1, model_kwargs=SMALL, **FAST)
    assert "B_0" not in model.data_spec["populations"]


def test_fewer_cells_than_k(letters_small):
    with pytest.raises(ValueError, match="at least 61"):
        bioflow.tl.fit_meta_flow(
            letters_small,
            **KEYS,
            max_steps=1,
            model_kwargs={**SMALL, "k": 60},
            on_small="raise",
            **FAST,
        )


@pytest.mark.parametrize(
    "bad",
    [
        dict(population_key="nope"),
        dict(source_key="nope"),
        dict(use_rep="nope"),
        dict(condition_key="nope"),
        dict(source_value="nope"),
        dict(exclude_populations=["Z"]),
    ],
)
def test_missing_keys(letters_small, bad):
    with pytest.raises(ValueError, match="nope|'Z'"):
        bioflow.tl.fit_meta_flow(
            letters_small, **{**KEYS, **bad}, max_steps=1, model_kwargs=SMALL, **FAST
        )


def test_conditions_and_cgfm_unknown_condition():
    a = bioflow.datasets.population_response(4, n_cells=30, dim=3, seed=1)
    model = bioflow.tl.fit_meta_flow(
        a,
        population_key="population",
        source_key="treatment",
        source_value="control",
        condition_key="treatment",
        method="cgfm",
        exclude_populations=["pop3"],
        max_steps=2,
        populations_per_step=2,
        cells_per_population=8,
        model_kwargs=SMALL,
        **FAST,
    )
    assert model.data_spec["conditions"] == ["drugA", "drugB"]
    src = a[a.obs["population"] == "pop3"]
    with pytest.raises(ValueError, match="unknown condition 'drugC'"):
        bioflow.tl.predict_population(model, src, condition="drugC")
    with pytest.raises(ValueError, match="condition="):
        bioflow.tl.predict_population(model, src)
    pred = bioflow.tl.predict_population(model, src, condition="drugB")
    assert pred.shape == (30, 3) and (pred.obs["treatment"] == "drugB").all()
    # unseen population -> uniform one-hot; a seen one -> its own one-hot
    cv = model.condition_vector(1, condition=torch.tensor([0]), population=torch.tensor([-1]))
    assert torch.allclose(cv[0, :3], torch.full((3,), 1 / 3))
    df = bioflow.tl.evaluate_populations(model, a, populations=["pop3"])
    assert len(df) == 2 * 2 + 2 + 2 and df["r"].notna().all()


def test_populations_plot(tmp_path, letters_small, fitted):
    pop = letters_small[letters_small.obs["population"] == "C_1"]
    src, truth = pop[pop.obs["state"] == "source"], pop[pop.obs["state"] == "target"]
    pred = bioflow.tl.predict_population(fitted, src)
    axes = bioflow.pl.populations(src, pred, truth, save=tmp_path / "p.png", show=False)
    assert len(axes) == 3 and (tmp_path / "p.png").stat().st_size > 0
    assert len(axes[1].collections[0].get_offsets()) == 60
    with pytest.raises(ValueError, match="3 axes"):
        bioflow.pl.populations(src, pred, truth, ax=[axes[0]])
