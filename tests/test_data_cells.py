import numpy as np
import pytest
import torch

from bioflow.core import ExactOTCoupling, GibbsWeightCoupling
from bioflow.data import CellDynamicsDataModule, CellPairDataset, read_time_series


def test_batches_and_holdout_validation(small_adata):
    dm = CellDynamicsDataModule(
        small_adata,
        time_key="time",
        use_rep="X_pca",
        exclude_times=(2.0,),
        batch_size=16,
        steps_per_epoch=3,
    )
    batch = next(iter(dm.train_dataloader()))
    # kept times 0, 1, 3, 4 -> intervals (0,1), (1,3), (3,4)
    assert batch["x0"].shape == (3, 16, 10)
    assert batch["t0"].tolist() == [0.0, 1.0, 3.0]
    assert batch["t1"].tolist() == [1.0, 3.0, 4.0]
    assert len(list(dm.train_dataloader())) == 3
    names = [b["name"] for b in dm.val_batches()]
    assert "holdout_2.0" in names
    hold = [b for b in dm.val_batches() if b["holdout"]][0]
    assert (hold["t0"], hold["t1"]) == (1.0, 2.0)


def test_rank_shards_are_disjoint(small_adata):
    series = read_time_series(small_adata, "time", "X_pca")
    ds = CellPairDataset(series, batch_size=8)
    a, b = ds.shard(0, 2), ds.shard(1, 2)
    for k in series.kept:
        sa, sb = set(a[k].tolist()), set(b[k].tolist())
        assert len(sa & sb) == 0
        assert sa | sb == set(series.cells_at(k).tolist())


def test_coupling_in_workers_pairs_batches(small_adata):
    dm = CellDynamicsDataModule(
        small_adata,
        time_key="time",
        use_rep="X_pca",
        batch_size=32,
        steps_per_epoch=2,
        num_workers=1,
    )
    dm.set_coupling(ExactOTCoupling())
    batch = next(iter(dm.train_dataloader()))
    assert batch["paired"] is True or bool(batch["paired"])
    x0, x1 = batch["x0"][0], batch["x1"][0]
    # an optimal assignment cannot be improved by swapping any two partners
    c = ((x0[:, None] - x1[None]) ** 2).sum(-1)
    diag = c.diagonal()
    swap = c + c.T - diag[:, None] - diag[None, :]
    assert swap.min() > -1e-4
    dm.set_coupling(GibbsWeightCoupling())
    batch = next(iter(dm.train_dataloader()))
    assert batch["weight"].shape == (4, 32)
    assert torch.all((batch["weight"] > 0) & (batch["weight"] <= 1))


def test_datamodule_reads_h5ad(tmp_path, small_adata):
    path = tmp_path / "cells.h5ad"
    small_adata.write_h5ad(path)
    dm = CellDynamicsDataModule(str(path), time_key="day", use_rep="X_pca", backed=True)
    assert dm.dim == 10
    assert dm.data_spec["time"]["labels"] == [f"day{i}" for i in range(5)]
    with pytest.raises(ValueError, match="batch_size"):
        CellPairDataset(dm.series, batch_size=0)
    assert np.isfinite(dm.series.x).all()


def test_connect_hands_the_model_coupling_to_the_loader(small_adata):
    from bioflow.models import CellFlowMatching
    from bioflow.tl._train import connect

    model = CellFlowMatching(dim=10, method="ot-cfm", hidden=(8,), interpolant="linear")
    kw = dict(time_key="time", use_rep="X_pca", batch_size=8, steps_per_epoch=1)
    # no workers: the loader's prefetch thread couples the batches
    in_thread = CellDynamicsDataModule(small_adata, num_workers=0, **kw)
    connect(model, in_thread)
    assert in_thread.coupling is model.coupling
    assert bool(next(iter(in_thread.train_dataloader()))["paired"])
    in_workers = CellDynamicsDataModule(small_adata, num_workers=1, **kw)
    connect(model, in_workers)
    assert in_workers.coupling is model.coupling
    assert bool(next(iter(in_workers.train_dataloader()))["paired"])
    # chained trajectories (the default spline interpolant) are chained in the loader too
    chained = CellDynamicsDataModule(small_adata, num_workers=1, **kw)
    connect(CellFlowMatching(dim=10, hidden=(8,)), chained)
    batch = next(iter(chained.train_dataloader()))
    assert batch["paired"] == "chains" and batch["traj"].shape == (5, 8, 10)
    # a collective (global DDP) coupling stays in the training step
    global_model = CellFlowMatching(dim=10, method="ot-cfm", hidden=(8,), global_coupling=True)
    in_step = CellDynamicsDataModule(small_adata, num_workers=0, **kw)
    connect(global_model, in_step)
    assert in_step.coupling is None
    assert "paired" not in next(iter(in_step.train_dataloader()))


def test_data_spec_dataclass_reads_like_the_stored_dict(small_adata, tmp_path):
    from bioflow.data import TimeCourseSpec
    from bioflow.models import CellFlowMatching, load_model

    spec = read_time_series(small_adata, "day", "X_pca", exclude_times=("day2",)).data_spec()
    assert isinstance(spec, TimeCourseSpec)
    plain = spec.to_dict()
    assert dict(spec) == plain and spec["dim"] == 10 and plain["kept"] == [0, 1, 3, 4]
    assert plain["time"]["labels"] == [f"day{i}" for i in range(5)]
    # a model given the dataclass keeps a plain copy, so the checkpoint loads weights-only
    model = CellFlowMatching(hidden=(8,), data_spec=spec)
    assert type(model.data_spec) is dict and model.data_spec == plain
    model.save(tmp_path / "m.pt")
    assert load_model(tmp_path / "m.pt").data_spec == plain
