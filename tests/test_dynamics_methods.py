"""Time clock, chained couplings, spline interpolant, endpoint metrics, plots."""

import numpy as np
import pytest
import torch

import bioflow
from bioflow.core import ExactOTCoupling
from bioflow.core.couplings.trajectory import chain_couplings
from bioflow.core.paths.spline import (
    SplinePath,
    natural_spline_eval,
    natural_spline_second_derivatives,
)
from bioflow.metrics import off_data_fraction

FAST = dict(enable_progress_bar=False)


def test_units_do_not_change_predictions(small_adata):
    """Fitting on t and on 3600 t (same seed) gives the same predictions."""
    a_days = small_adata.copy()
    a_secs = small_adata.copy()
    a_secs.obs["time"] = a_secs.obs["time"] * 3600.0
    kw = dict(time_key="time", use_rep="X_pca", max_steps=30, batch_size=32, seed=3, **FAST)
    m_days = bioflow.tl.fit_dynamics(a_days, **kw)
    m_secs = bioflow.tl.fit_dynamics(a_secs, **kw)
    p_days = bioflow.tl.predict_cells(m_days, a_days, source_time=0.0, target_time=2.5)
    p_secs = bioflow.tl.predict_cells(m_secs, a_secs, source_time=0.0, target_time=2.5 * 3600)
    assert np.isfinite(p_secs.obsm["X_pca"]).all()
    np.testing.assert_allclose(p_days.obsm["X_pca"], p_secs.obsm["X_pca"], atol=1e-4)
    # the clock is stored with the model: first time 0, mean interval 1
    assert m_secs.data_spec["time"]["unit"] == pytest.approx(3600.0)


def test_far_target_time_is_refused(small_adata):
    m = bioflow.tl.fit_dynamics(small_adata, time_key="time", use_rep="X_pca", max_steps=2, **FAST)
    with pytest.raises(ValueError, match="target_time=1000000.0 is too far outside"):
        bioflow.tl.predict_cells(m, small_adata, source_time=0.0, target_time=1e6)
    with pytest.raises(ValueError, match="target_time must be a finite time"):
        bioflow.tl.predict_cells(m, small_adata, source_time=0.0, target_time=float("nan"))
    with pytest.raises(ValueError, match="times"):
        bioflow.tl.trajectories(m, small_adata, times=[0.0, -50.0])


def test_old_model_without_clock_keeps_raw_times():
    from bioflow.data import TimeSpec

    spec = TimeSpec.from_dict(
        {"key": "t", "labels": [0, 10], "values": [0.0, 10.0], "kind": "numeric"}
    )
    assert spec.clock(10) == 10.0  # descriptions saved before the clock: identity


def test_natural_spline_matches_scipy():
    from scipy.interpolate import CubicSpline

    knots = torch.tensor([0.0, 1.0, 3.0, 4.0, 6.0], dtype=torch.float64)
    rng = np.random.default_rng(0)
    y = torch.from_numpy(rng.normal(size=(5, 7, 2)))
    m = natural_spline_second_derivatives(knots, y)
    t = torch.from_numpy(rng.uniform(0, 6, 7))
    x, dx = natural_spline_eval(knots, y, m, t)
    for i in range(7):
        ref = CubicSpline(knots.numpy(), y[:, i].numpy(), bc_type="natural")
        np.testing.assert_allclose(x[i].numpy(), ref(t[i].item()), atol=1e-10)
        np.testing.assert_allclose(dx[i].numpy(), ref(t[i].item(), 1), atol=1e-10)
    # two knots: the straight line and its constant velocity
    x2, dx2 = natural_spline_eval(
        knots[:2],
        y[:2],
        natural_spline_second_derivatives(knots[:2], y[:2]),
        torch.full((7,), 0.25, dtype=torch.float64),
    )
    np.testing.assert_allclose(x2.numpy(), (0.75 * y[0] + 0.25 * y[1]).numpy())
    np.testing.assert_allclose(dx2.numpy(), (y[1] - y[0]).numpy())


def test_spline_path_targets_are_derivatives():
    knots = torch.tensor([0.0, 1.0, 2.5])
    y = torch.randn(3, 64, 2, generator=torch.Generator().manual_seed(0))
    g1 = torch.Generator().manual_seed(5)
    ps = SplinePath(sigma=0.0).sample(y, knots, generator=g1)
    m = natural_spline_second_derivatives(knots, y)
    h = 1e-3
    xp, _ = natural_spline_eval(knots, y, m, (ps.t + h).clamp(max=2.5))
    xm, _ = natural_spline_eval(knots, y, m, (ps.t - h).clamp(min=0.0))
    fd = (xp - xm) / ((ps.t + h).clamp(max=2.5) - (ps.t - h).clamp(min=0.0))[:, None]
    assert torch.allclose(fd, ps.u_t, atol=2e-3)
    assert float(ps.t.min()) >= 0 and float(ps.t.max()) <= 2.5


def test_chain_couplings_follow_each_cell():
    # Three well-separated lineages drifting right: the chains must not mix them.
    g = torch.Generator().manual_seed(0)
    lanes = torch.tensor([0.0, 10.0, 20.0]).repeat_interleave(10)
    pts = []
    for k in range(4):
        perm = torch.randperm(30, generator=g)
        pts.append(
            torch.stack([torch.full((30,), float(k)), lanes[perm]], 1)
            + 0.1 * torch.randn(30, 2, generator=g)
        )
    traj, w = chain_couplings(ExactOTCoupling(), pts)
    assert traj.shape == (4, 30, 2) and w is None
    assert torch.allclose(traj[0], pts[0])
    lane = (traj[:, :, 1] / 10).round()
    assert bool((lane == lane[0]).all())
    # every cell of every time is used once (exact OT with equal sizes is a permutation)
    for k in range(4):
        assert torch.equal(traj[k].sort(0).values, pts[k].sort(0).values)
    with pytest.raises(ValueError, match="at least two"):
        chain_couplings(ExactOTCoupling(), pts[:1])


def test_spline_model_trains_and_beats_kinks(small_adata):
    m = bioflow.tl.fit_dynamics(
        small_adata,
        time_key="time",
        use_rep="X_pca",
        max_steps=20,
        batch_size=32,
        model_kwargs={"interpolant": "spline"},
        **FAST,
    )
    assert m.interpolant == "spline"
    p = bioflow.tl.predict_cells(m, small_adata, source_time=0.0, target_time=4.0)
    assert np.isfinite(p.obsm["X_pca"]).all()
    with pytest.raises(ValueError, match="interpolant"):
        bioflow.models.CellFlowMatching(dim=2, interpolant="bezier")


def test_off_data_fraction():
    rng = np.random.default_rng(0)
    target = rng.normal(size=(400, 2))
    assert off_data_fraction(target + 100, target) == 1.0
    same = rng.normal(size=(400, 2))
    assert off_data_fraction(same, target) < 0.15  # a fresh sample: ~5% by construction
    gap = np.column_stack([np.zeros(50), np.zeros(50)])
    two = np.vstack(
        [rng.normal(size=(200, 2)) * 0.1 + [-3, 0], rng.normal(size=(200, 2)) * 0.1 + [3, 0]]
    )
    assert off_data_fraction(gap, two) == 1.0  # the empty gap between two branches
    with pytest.raises(ValueError, match="quantile"):
        off_data_fraction(same, target, quantile=0.0)


def test_evaluate_holdout_reports_endpoints(small_adata):
    df = bioflow.tl.evaluate_holdout(
        small_adata, time_key="time", use_rep="X_pca", holdout_times=[2.0], max_steps=5, **FAST
    )
    assert {"w1_end", "off_data"} <= set(df.columns)
    row = df[df.method == "ot-cfm"].iloc[0]
    assert 0 <= row.off_data <= 1 and row.w1_end > 0
    assert df[df.method == "mccann"]["w1_end"].isna().all()


def test_pl_trajectories_time_colour_and_arrows(small_adata):
    import matplotlib

    matplotlib.use("Agg")
    a = small_adata.copy()
    m = bioflow.tl.fit_dynamics(a, time_key="time", use_rep="X_pca", max_steps=3, **FAST)
    bioflow.tl.trajectories(m, a, times=[0.0, 1.0, 2.0, 3.0, 4.0])
    ax = bioflow.pl.trajectories(
        a, starting_at=0.0, path_color="time", n_trajectories=10, show=False
    )
    from matplotlib.collections import LineCollection
    from matplotlib.patches import FancyArrowPatch

    lines = [c for c in ax.collections if isinstance(c, LineCollection)]
    assert lines and lines[0].get_array() is not None  # coloured by time along the path
    assert sum(isinstance(p, FancyArrowPatch) for p in ax.patches) == 10  # one arrow each
    with pytest.raises(ValueError, match="path_color"):
        bioflow.pl.trajectories(a, path_color="rainbow", show=False)
