"""The shared pieces of the ``tl.fit_*`` functions (bioflow/tl/_train.py)."""

import anndata as ad
import numpy as np
import torch

from bioflow.tl._train import fit_model, record


def test_record_keeps_none_and_writes_h5ad(tmp_path):
    a = ad.AnnData(np.ones((3, 2), dtype=np.float32))
    record(a, "run", {"use_rep": None, "times": (0, 1.5), "steps": np.int64(4)})
    assert a.uns["bioflow"]["run"] == {"use_rep": None, "times": [0, 1.5], "steps": 4}
    a.write_h5ad(tmp_path / "a.h5ad")
    back = ad.read_h5ad(tmp_path / "a.h5ad").uns["bioflow"]["run"]
    assert back["use_rep"] is None and int(back["steps"]) == 4


def test_fit_model_is_seeded_and_returns_an_eval_model(small_adata):
    from bioflow.data import CellDynamicsDataModule
    from bioflow.models import CellFlowMatching

    def fit(seed):
        dm = CellDynamicsDataModule(
            small_adata, time_key="time", use_rep="X_pca", batch_size=8, steps_per_epoch=3
        )
        return fit_model(
            lambda: CellFlowMatching(dim=10, hidden=(8,)),
            dm,
            max_steps=3,
            seed=seed,
            trainer_kwargs={"enable_progress_bar": False, "accelerator": "cpu"},
        )

    a = fit(0)
    b = fit(0)
    c = fit(1)
    assert not a.training
    pa, pb, pc = (torch.cat([p.flatten() for p in m.parameters()]) for m in (a, b, c))
    assert torch.equal(pa, pb) and not torch.equal(pa, pc)
