"""DataModules built from files and built-in names, as the CLI builds them."""

import numpy as np
import pytest
import torch

import bioflow
from bioflow.data import PopulationDataModule, SequenceDataModule
from bioflow.metrics import kmer_distance, kmer_spectrum, letter_frequencies, marginal_kl
from bioflow.models import MetaFlowMatching, SequenceFlow


def test_population_datamodule_from_backed_h5ad(tmp_path):
    a = bioflow.datasets.population_response(n_populations=3, n_cells=90, dim=4, seed=1)
    a.write_h5ad(tmp_path / "p.h5ad")
    dm = PopulationDataModule(
        str(tmp_path / "p.h5ad"),
        source_key="treatment",
        source_value="control",
        condition_key="treatment",
        exclude_populations=["pop2"],
        backed=True,
        cells_per_population=8,
        populations_per_step=2,
    )
    np.testing.assert_allclose(dm.pset.x, np.asarray(a.X, dtype=np.float32))
    spec = dm.data_spec
    assert spec["dim"] == 4 and spec["conditions"] == ["drugA", "drugB"]
    assert spec["populations"] == ["pop0", "pop1"]
    assert spec["min_source_cells"] == min(
        int(((a.obs["population"] == p) & (a.obs["treatment"] == "control")).sum())
        for p in ("pop0", "pop1", "pop2")
    )
    model = MetaFlowMatching(method="cgfm", width=16, depth=1, data_spec=spec)
    assert (model.dim, model.n_conditions, model.n_populations) == (4, 2, 2)
    assert [b["name"] for b in dm.val_dataloader()] == ["pop2/drugA", "pop2/drugB"]


def test_meta_model_refuses_k_larger_than_populations():
    a = bioflow.datasets.letters(letters="AB", n_rotations=1, n_points=30)
    dm = PopulationDataModule(a, use_rep="X_coords")
    with pytest.raises(ValueError, match="30 initial cells.*k=50"):
        MetaFlowMatching(method="mfm", data_spec=dm.data_spec)


def test_missing_file_and_unknown_builtin():
    with pytest.raises(ValueError, match="no .h5ad file at 'nope.h5ad'"):
        PopulationDataModule("nope.h5ad")
    with pytest.raises(ValueError, match="built-in dataset .builtin:letters. for sequences"):
        SequenceDataModule("builtin:letters")


def test_sequence_datamodule_builtin_split_and_spec():
    dm = SequenceDataModule(
        "builtin:categorical_toy",
        dataset_kwargs={"K": 6, "n": 200},
        val_fraction=0.25,
        batch_size=16,
    )
    assert len(dm.alphabet) == 6 and dm.data_spec == {"alphabet": dm.alphabet, "seq_len": 4}
    assert len(dm.val_rows) == 50 and not set(dm.val_rows) & set(dm.train_rows)
    rows = torch.cat([b["rows"] for b, _ in zip(dm.train_dataloader(), range(20))])
    assert not set(rows.tolist()) & set(dm.val_rows.tolist()), "training never sees val rows"
    motif = SequenceDataModule("builtin:motif_sequences", dataset_kwargs={"n": 50, "length": 10})
    assert motif.targets is not None and motif.targets.shape == (50,)
    model = SequenceFlow(hidden=8, n_layers=1, data_spec=dm.data_spec)
    assert (model.alphabet, model.seq_len) == (dm.alphabet, 4)
    with pytest.raises(ValueError, match="differs from the data's alphabet"):
        SequenceFlow("ACGT", data_spec=dm.data_spec)
    with pytest.raises(ValueError, match="needs `alphabet` and `seq_len`"):
        SequenceFlow()
    with pytest.raises(ValueError, match="val_fraction"):
        SequenceDataModule(["ACGT"] * 3, val_fraction=1.0)


def test_sequence_metrics_hand_solved():
    tokens = np.array([[0, 1], [0, 0], [1, 1], [0, 1]])
    np.testing.assert_allclose(letter_frequencies(tokens, 2), [[0.75, 0.25], [0.25, 0.75]])
    probs = np.array([[0.5, 0.5], [0.5, 0.5]])
    kl = 0.75 * np.log(1.5) + 0.25 * np.log(0.5)  # same at both positions
    assert marginal_kl(tokens, probs) == pytest.approx(kl)
    assert marginal_kl(tokens, letter_frequencies(tokens, 2)) == pytest.approx(0.0)
    # 2-mers of "ACA" over ACGT: AC (0*4+1 = 1) and CA (1*4+0 = 4)
    spec = kmer_spectrum([[0, 1, 0]], 4, k=2)
    assert spec[1] == spec[4] == 0.5 and spec.sum() == pytest.approx(1.0)
    assert kmer_distance([[0, 0, 0]], [[1, 1, 1]], 4, k=2) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="integer letter indices"):
        kmer_spectrum(np.zeros((2, 3)), 4)
    with pytest.raises(ValueError, match=r"probs must be \(L=2, K\)"):
        marginal_kl(tokens, [[1.0]])
