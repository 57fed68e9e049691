"""Speed machinery: O(batch) draws, prefetching, parallel couplings, backed rows, lazy
imports, the global DDP coupling, compile wiring and sync-free checks."""

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pytest
import torch

import bioflow
from bioflow.core import ExactOTCoupling, GibbsWeightCoupling, SinkhornCoupling
from bioflow.core.couplings.batched import couple_many
from bioflow.core.couplings.distributed import GlobalCoupling
from bioflow.core.couplings.gibbs import gibbs_weights
from bioflow.core.couplings.trajectory import chain_couplings
from bioflow.data import CellDynamicsDataModule
from bioflow.data.backed import H5Rows
from bioflow.data.draws import RowSets
from bioflow.data.streams import prefetch, sample_without_replacement

ROOT = Path(__file__).resolve().parents[1]


# --- draws --------------------------------------------------------------------------------
def test_sample_without_replacement_is_distinct_seeded_and_o_batch():
    g = lambda s: torch.Generator().manual_seed(s)  # noqa: E731
    for m, n in [(10, 10), (10, 3), (1000, 400), (10**12, 1024)]:
        idx = sample_without_replacement(m, n, g(0))
        assert len(idx) == n and len(set(idx.tolist())) == n
        assert int(idx.min()) >= 0 and int(idx.max()) < m
        assert torch.equal(idx, sample_without_replacement(m, n, g(0)))
    t = time.perf_counter()
    sample_without_replacement(10**15, 1024, g(1))  # a permutation of 10**15 would not fit
    assert time.perf_counter() - t < 1.0
    with pytest.raises(ValueError, match="n <= m"):
        sample_without_replacement(3, 4, g(0))


def test_sample_without_replacement_is_uniform():
    # m >= 2n takes the redraw path: every value must be picked with probability n / m
    m, n, reps = 12, 5, 6000
    counts = np.zeros(m)
    gen = torch.Generator().manual_seed(3)
    for _ in range(reps):
        counts[sample_without_replacement(m, n, gen).numpy()] += 1
    freq = counts / reps
    assert np.abs(freq - n / m).max() < 0.03, freq


def test_row_sets_draw_distinct_rows_of_each_set_seeded_and_o_batch():
    sets = RowSets([torch.arange(10), torch.arange(100, 103), torch.arange(10**7)])
    g = lambda s: torch.Generator().manual_seed(s)  # noqa: E731
    out = sets.draw([0, 1, 0, 2], 5, g(0))
    assert out.shape == (4, 5) and out.dtype == torch.int64
    for row in (out[0], out[2], out[3]):  # sets of >= 5 rows: distinct
        assert len(set(row.tolist())) == 5
    assert bool((out[0] < 10).all()) and bool((out[3] < 10**7).all())
    assert set(out[1].tolist()) <= {100, 101, 102}  # 3 rows for 5 draws: with replacement
    assert not torch.equal(out[0], out[2])  # one draw per requested set
    assert torch.equal(out, sets.draw([0, 1, 0, 2], 5, g(0)))
    gen = g(0)
    assert not torch.equal(sets.draw([2], 64, gen), sets.draw([2], 64, gen))  # state advances
    t = time.perf_counter()
    for _ in range(100):
        sets.draw([2, 2, 2, 2], 1024, gen)
    assert time.perf_counter() - t < 1.0  # O(batch) from a set of 10**7 rows
    with pytest.raises(ValueError, match="at least one row"):
        RowSets([torch.arange(3), torch.arange(0)])
    with pytest.raises(ValueError, match=r"set indices must lie in \[0, 3\)"):
        sets.draw([3], 2, g(0))
    with pytest.raises(ValueError, match="n must be >= 0"):
        sets.draw([0], -1, g(0))


def test_row_sets_draw_uniformly():
    # every value with probability n / m, and every value equally likely at each position
    m, n, reps = 12, 5, 6000
    counts = np.zeros((n, m))
    sets, gen = RowSets([np.arange(m)]), torch.Generator().manual_seed(3)
    for _ in range(reps):
        counts[np.arange(n), sets.draw([0], n, gen)[0].numpy()] += 1
    assert np.abs(counts.sum(0) / reps - n / m).max() < 0.03
    assert np.abs(counts / reps - 1 / m).max() < 0.02


def test_chain_rows_pairs_consecutive_clouds_optimally():
    from scipy.optimize import linear_sum_assignment

    from bioflow.core.couplings.assignment import chain_rows

    rng = np.random.default_rng(0)
    pts = rng.normal(size=(4, 60, 3)) + np.arange(4)[:, None, None]
    rows = chain_rows(pts)
    assert rows.shape == (4, 60) and np.array_equal(rows[0], np.arange(60))
    for k in range(3):
        assert sorted(rows[k + 1].tolist()) == list(range(60))
        a, b = pts[k][rows[k]], pts[k + 1][rows[k + 1]]
        cost = ((pts[k][:, None] - pts[k + 1][None]) ** 2).sum(-1)
        best = cost[linear_sum_assignment(cost)].sum()
        assert ((a - b) ** 2).sum() == pytest.approx(best, rel=1e-9)
    # many dimensions take the matrix-product costs: the same chains
    wide = rng.normal(size=(3, 40, 50)) + np.arange(3)[:, None, None]
    ot = ExactOTCoupling()
    by_products = ot.chain_rows(torch.from_numpy(wide)).numpy()
    assert np.array_equal(by_products, chain_rows(wide))
    # large batches solve each interval in its own thread: the same chains
    big = rng.normal(size=(3, 520, 2)) + np.arange(3)[:, None, None]
    assert np.array_equal(ot.chain_rows(torch.from_numpy(big)).numpy(), chain_rows(big))
    bad = pts.copy()
    bad[2, 5, 1] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        chain_rows(bad)
    with pytest.raises(ValueError, match="NaN or infinite"):
        ot.chain_rows(torch.from_numpy(bad))


# --- prefetching --------------------------------------------------------------------------
def test_prefetch_keeps_order_raises_and_stops():
    assert list(prefetch(iter(range(20)), depth=3)) == list(range(20))

    def bad():
        yield 1
        raise KeyError("boom")

    it = prefetch(bad())
    assert next(it) == 1
    with pytest.raises(KeyError, match="boom"):
        next(it)
    made = []

    def endless():
        i = 0
        while True:
            made.append(i)
            yield i
            i += 1

    before = threading.active_count()
    it = prefetch(endless(), depth=2)
    assert [next(it) for _ in range(3)] == [0, 1, 2]
    it.close()
    time.sleep(0.3)
    n = len(made)
    time.sleep(0.3)
    assert len(made) == n, "a closed prefetch must stop making items"
    assert threading.active_count() <= before
    with pytest.raises(ValueError, match="depth"):
        prefetch(iter([]), depth=0)


def test_prefetched_stream_equals_plain_stream(small_adata):
    def batches(depth):
        dm = CellDynamicsDataModule(
            small_adata, time_key="time", use_rep="X_pca", batch_size=32, steps_per_epoch=4
        )
        dm.set_coupling(ExactOTCoupling())
        loader = dm.train_dataloader()
        loader.dataset.prefetch = depth
        return list(loader)

    plain, pre = batches(0), batches(2)
    assert len(plain) == len(pre) == 4
    for a, b in zip(plain, pre, strict=True):
        assert a["seed"] == b["seed"]
        assert torch.equal(a["x0"], b["x0"]) and torch.equal(a["x1"], b["x1"])


def test_couple_many_same_in_threads_and_serial():
    g = torch.Generator().manual_seed(0)
    x0, x1 = torch.randn(3, 150, 4, generator=g), torch.randn(3, 150, 4, generator=g) + 1
    for coupling in (ExactOTCoupling(), SinkhornCoupling(reg=0.5)):
        a = couple_many(coupling, x0, x1, torch.Generator().manual_seed(7), parallel=True)
        b = couple_many(coupling, x0, x1, torch.Generator().manual_seed(7), parallel=False)
        for ca, cb in zip(a, b, strict=True):
            assert torch.equal(ca.index1, cb.index1)
    with pytest.raises(ValueError, match="as many problems"):
        couple_many(ExactOTCoupling(), x0, x1[:2])


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_couple_many_in_a_forked_child_after_the_parent_used_the_pool():
    # a loader worker is forked from a parent whose coupling pool already ran: the child
    # inherits the pool object without its threads and must not wait on it forever
    import multiprocessing as mp

    x0, x1 = torch.randn(2, 130, 3), torch.randn(2, 130, 3) + 1
    couple_many(ExactOTCoupling(), x0, x1, parallel=True)
    ctx = mp.get_context("fork")
    out = ctx.Queue()

    def work():
        torch.set_num_threads(1)  # as a DataLoader worker does: OpenMP does not survive fork
        try:
            pairs = couple_many(ExactOTCoupling(), x0, x1, parallel=True)
            out.put([cb.index1.tolist() for cb in pairs])
        except BaseException as err:  # reported to the parent
            out.put(repr(err))

    child = ctx.Process(target=work)
    child.start()
    child.join(timeout=30)
    if child.is_alive():
        child.kill()
        pytest.fail("couple_many hung in a forked child")
    assert child.exitcode == 0, f"the forked child died (exit code {child.exitcode})"
    assert out.get(timeout=5) == [
        cb.index1.tolist() for cb in couple_many(ExactOTCoupling(), x0, x1, parallel=False)
    ]


# --- pairing in the loader ----------------------------------------------------------------
def _serial_chains(coupling, points):
    # the definition: each plan is solved on the batch as already re-ordered along the chains
    chain, weight = [points[0]], torch.ones(points[0].shape[0])
    for nxt in points[1:]:
        cb = coupling(chain[-1], nxt)
        chain.append(cb.x1)
        weight = weight * (1 if cb.weight is None else cb.weight)
    return torch.stack(chain), weight


def test_composed_chains_equal_serial_chains():
    g = torch.Generator().manual_seed(0)
    points = [torch.randn(150, 5, generator=g) + k for k in range(5)]
    ref, _ = _serial_chains(ExactOTCoupling(), points)
    for parallel in (True, False):
        traj, w = chain_couplings(ExactOTCoupling(), points, parallel=parallel)
        assert w is None and torch.equal(traj, ref)
    # every cell of every time is used once along the chains
    for k in range(5):
        assert torch.equal(traj[k][traj[k][:, 0].argsort()], points[k][points[k][:, 0].argsort()])
    # weights (W-CFM's Gibbs kernel) follow the chains: the product of the chain's own pairs
    traj, w = chain_couplings(GibbsWeightCoupling(), points, torch.Generator().manual_seed(1))
    steps = [gibbs_weights(traj[k], traj[k + 1], 5**0.5) for k in range(4)]
    assert torch.allclose(w, torch.stack(steps).prod(0))
    # a coupling that draws rows (not a permutation) is chained one plan after another
    traj, _ = chain_couplings(SinkhornCoupling(reg=0.5), points, torch.Generator().manual_seed(2))
    assert traj.shape == (5, 150, 5)


def _growth_adata(small_adata):
    a = small_adata.copy()
    a.obs["g"] = np.random.default_rng(0).normal(0.0, 0.5, a.n_obs).astype(np.float32)
    return a


@pytest.mark.parametrize(
    "kwargs",
    [
        {},  # the default: OT-CFM with chained trajectories and the spline interpolant
        {"method": "w-cfm", "interpolant": "spline"},
        {"method": "sb-cfm"},
        {"method": "sf2m"},
        {"method": "ot-cfm", "growth": "unbalanced"},
        {"method": "ot-cfm", "growth": "given"},
    ],
    ids=["ot-spline", "w-spline", "sb-linear", "sf2m", "unbalanced", "given"],
)
def test_loader_pairing_equals_the_in_step_pairing(small_adata, kwargs):
    from bioflow.models import CellFlowMatching
    from bioflow.tl._train import connect

    growth_key = "g" if kwargs.get("growth") == "given" else None
    adata = _growth_adata(small_adata) if growth_key else small_adata

    def datamodule():
        return CellDynamicsDataModule(
            adata,
            time_key="time",
            use_rep="X_pca",
            batch_size=24,
            steps_per_epoch=3,
            growth_key=growth_key,
        )

    torch.manual_seed(0)
    model = CellFlowMatching(dim=10, hidden=(16,), **kwargs)
    paired_dm, raw_dm = datamodule(), datamodule()
    connect(model, paired_dm)
    assert paired_dm.pairing is not None and not raw_dm.pairing
    for paired, raw in zip(paired_dm.train_dataloader(), raw_dm.train_dataloader(), strict=True):
        assert paired["paired"] == model.pairing.kind and "paired" not in raw
        in_step = model.pairing(raw)
        assert sorted(in_step) == sorted(paired)
        for key, value in in_step.items():
            if isinstance(value, torch.Tensor):
                assert torch.equal(value, paired[key]), key
        # the loss of the loader-paired batch is the loss the step computes from the raw one
        torch.manual_seed(1)
        a = model.compute_loss(paired).loss
        torch.manual_seed(1)
        b = model.compute_loss(raw).loss
        assert torch.equal(a, b)


# --- backed rows --------------------------------------------------------------------------
def test_backed_datamodule_streams_rows_and_matches_memory(small_adata, tmp_path):
    path = tmp_path / "cells.h5ad"
    small_adata.write_h5ad(path)
    kw = dict(time_key="time", use_rep="X_pca", batch_size=16, steps_per_epoch=3, seed=4)
    mem = CellDynamicsDataModule(small_adata, **kw)
    disk = CellDynamicsDataModule(str(path), backed=True, **kw)
    assert isinstance(disk.series.x, H5Rows) and disk.series.x._offset is not None
    for a, b in zip(mem.train_dataloader(), disk.train_dataloader(), strict=True):
        assert torch.equal(a["x0"], b["x0"]) and torch.equal(a["x1"], b["x1"])
    assert [v["name"] for v in mem.val_batches()] == [v["name"] for v in disk.val_batches()]
    # X streams too
    disk_x = CellDynamicsDataModule(str(path), backed=True, **{**kw, "use_rep": None})
    assert isinstance(disk_x.series.x, H5Rows) and disk_x.dim == small_adata.n_vars


def test_h5rows_chunked_dataset_and_nan(tmp_path):
    x = np.arange(60, dtype=np.float64).reshape(20, 3)
    with h5py.File(tmp_path / "c.h5", "w") as f:
        f.create_dataset("m", data=x, chunks=(4, 3), compression="gzip")
        f.create_dataset("v", data=np.zeros(4))
    rows = H5Rows(tmp_path / "c.h5", "m")
    assert rows._offset is None  # compressed: index reads, not a memory map
    idx = np.array([7, 2, 7, 19])
    got = rows[idx]
    assert got.dtype == np.float32 and np.array_equal(got, x[idx].astype(np.float32))
    with pytest.raises(ValueError, match="2-D"):
        H5Rows(tmp_path / "c.h5", "v")
    bad = ad.AnnData(np.ones((6, 2), dtype=np.float32))
    bad.obs["time"] = [0.0, 0.0, 0.0, 1.0, 1.0, 1.0]
    bad.obsm["X_pca"] = np.ones((6, 2), dtype=np.float32)
    bad.obsm["X_pca"][4, 1] = np.nan
    bad.write_h5ad(tmp_path / "bad.h5ad")
    with pytest.raises(ValueError, match=r"adata.obsm\['X_pca'\] contains 1 NaN/inf"):
        CellDynamicsDataModule(str(tmp_path / "bad.h5ad"), use_rep="X_pca", backed=True)
    with pytest.raises(ValueError, match="use_rep='nope'"):
        CellDynamicsDataModule(str(tmp_path / "bad.h5ad"), use_rep="nope", backed=True)


# --- fixed overheads ----------------------------------------------------------------------
def test_import_bioflow_is_lazy():
    code = (
        "import sys, bioflow; heavy = ['torch', 'lightning', 'anndata', 'scanpy', 'numba', "
        "'ot', 'torch_geometric', 'matplotlib']; print([m for m in heavy if m in sys.modules])"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
    # members still resolve, and dir() lists them
    assert bioflow.tl.fit_dynamics.__name__ == "fit_dynamics"
    assert "fit_dynamics" in dir(bioflow.tl) and "ExactOTCoupling" in dir(bioflow.core)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        bioflow.tl.nope  # noqa: B018


def test_nonfinite_loss_raises_on_cpu():
    from bioflow.models import CellFlowMatching

    model = CellFlowMatching(dim=2, hidden=(8,))
    model._check_finite(torch.tensor(1.0))
    with pytest.raises(FloatingPointError, match="non-finite training loss"):
        model._check_finite(torch.tensor(float("nan")))


def test_compile_option_keeps_parameter_names(small_adata):
    model = bioflow.tl.fit_dynamics(
        small_adata,
        time_key="time",
        use_rep="X_pca",
        max_steps=3,
        batch_size=16,
        compile={"backend": "eager"},
        enable_progress_bar=False,
        model_kwargs={"hidden": (16,)},
    )
    assert model.net._compiled_call_impl is not None
    assert all("_orig_mod" not in k for k in model.state_dict())


# --- global coupling under DDP ------------------------------------------------------------
_RANK_SCRIPT = textwrap.dedent(
    """
    import sys, numpy as np, torch, torch.distributed as dist
    from bioflow.core import ExactOTCoupling, GibbsWeightCoupling, SinkhornCoupling
    from bioflow.core.couplings.distributed import GlobalCoupling
    rank, init, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
    g = torch.Generator().manual_seed(100 + rank)
    x0 = torch.randn(24, 3, generator=g)
    x1 = torch.randn(24, 3, generator=g) * 1.5 + 2
    exact = GlobalCoupling(ExactOTCoupling())(x0, x1)
    sk = GlobalCoupling(SinkhornCoupling(reg=0.3))(
        x0, x1, generator=torch.Generator().manual_seed(7 + rank))
    np.savez(f"{out}/rank{rank}.npz", x0=x0.numpy(), x1=x1.numpy(),
             exact=exact.x1.numpy(), sk=sk.x1.numpy(), sk_j=sk.index1.numpy())
    dist.destroy_process_group()
    """
)


def test_global_coupling_on_two_gloo_processes_equals_one_process(tmp_path):
    script = tmp_path / "rank.py"
    script.write_text(_RANK_SCRIPT)
    init = f"file://{tmp_path / 'pg'}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(r), init, str(tmp_path)],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for r in range(2)
    ]
    for p in procs:
        _, err = p.communicate(timeout=240)
        assert p.returncode == 0, err[-3000:]
    r = [np.load(tmp_path / f"rank{k}.npz") for k in range(2)]
    x0 = torch.from_numpy(np.concatenate([r[0]["x0"], r[1]["x0"]]))
    x1 = torch.from_numpy(np.concatenate([r[0]["x1"], r[1]["x1"]]))
    # exact: one assignment of the union, each rank holding its own rows' partners
    ref = ExactOTCoupling()(x0, x1).x1.numpy()
    assert np.array_equal(np.concatenate([r[0]["exact"], r[1]["exact"]]), ref)
    # partners come from the other rank too (the point of a global coupling)
    own = {tuple(v) for v in r[0]["x1"].tolist()}
    assert any(tuple(v) not in own for v in r[0]["exact"].tolist())
    # entropic: same plan and the same shared seed (drawn from rank 0's generator)
    seed = int(torch.randint(2**62, (1,), generator=torch.Generator().manual_seed(7)))
    ref_sk = SinkhornCoupling(reg=0.3)(x0, x1, generator=torch.Generator().manual_seed(seed))
    got_j = np.concatenate([r[0]["sk_j"], r[1]["sk_j"]])
    assert np.array_equal(got_j, ref_sk.index1.numpy())


def test_global_coupling_without_process_group_is_the_coupling():
    g = torch.Generator().manual_seed(1)
    x0, x1 = torch.randn(16, 2, generator=g), torch.randn(16, 2, generator=g)
    assert torch.equal(GlobalCoupling(ExactOTCoupling())(x0, x1).x1, ExactOTCoupling()(x0, x1).x1)
    with pytest.raises(ValueError, match="Coupling"):
        GlobalCoupling("exact")


def test_collective_couplings_stay_on_the_calling_thread():
    from bioflow.core.couplings.base import IndependentCoupling

    class Collective(IndependentCoupling):
        collective = True

        def pair(self, x0, x1, generator):
            seen.append(threading.current_thread())
            return super().pair(x0, x1, generator)

    seen = []
    x = torch.randn(3, 200, 2)
    couple_many(Collective(), x, x, torch.Generator().manual_seed(0), parallel=True)
    assert seen == [threading.current_thread()] * 3


def test_pairing_generator_checks_the_batch_seed():
    from bioflow.core.couplings.pairing import pairing_generator

    a = pairing_generator(7)
    b = pairing_generator(torch.tensor(7))
    assert torch.equal(torch.rand(3, generator=a), torch.rand(3, generator=b))
    assert pairing_generator(None) is None
    with pytest.raises(ValueError, match="batch seed"):
        pairing_generator(1.5)
    with pytest.raises(ValueError, match="shape"):
        pairing_generator(torch.tensor([1, 2]))
