"""Growth: one branch proliferates; branch proportions at the (held-out) last day."""

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.spatial import cKDTree

import bioflow
from bioflow.core.couplings.unbalanced import UnbalancedSinkhornCoupling

FAST = dict(enable_progress_bar=False)


@pytest.fixture(scope="module")
def growing():
    # fate_a cells divide at rate 1/day; the other fates do not.
    return bioflow.datasets.simulated_cycle_branching(
        n_cells_per_time=300, branch_growth=(1.0, 0.0, 0.0), seed=0
    )


def _branch_error(adata, **fit):
    """Fit without the last day, push day 0 there, compare weighted branch shares."""
    last = adata.obs["time"].max()
    at_last = (adata.obs["time"] == last).to_numpy()
    truth = adata.obs["branch"][at_last].value_counts(normalize=True)
    model = bioflow.tl.fit_dynamics(
        adata,
        time_key="time",
        use_rep="X_pca",
        exclude_times=[last],
        max_steps=600,
        batch_size=128,
        **fit,
        **FAST,
    )
    pred = bioflow.tl.predict_cells(model, adata, source_time=0.0, target_time=last)
    w = pred.obs.get("bioflow_growth_weight", pd.Series(np.ones(pred.n_obs))).to_numpy()
    # label each predicted cell by the branch of its nearest observed last-day cell
    _, j = cKDTree(adata.obsm["X_pca"][at_last]).query(pred.obsm["X_pca"])
    labels = adata.obs["branch"][at_last].to_numpy()[j]
    share = pd.Series(w).groupby(labels).sum() / w.sum()
    return max(abs(share.get(b, 0.0) - truth[b]) for b in truth.index)


# Both fits train with the same optimiser, Adam at a constant 1e-3 for 600 steps: with the
# package default (3e-3, cosine decay) the balanced model extrapolates this simulation's
# last-day shares to within 0.017, so the control would no longer separate the two.
OPTIM = {"lr": 1e-3, "lr_schedule": "constant"}


def test_given_growth_recovers_branch_proportions(growing):
    assert _branch_error(growing, growth_key="growth_rate", model_kwargs=OPTIM) < 0.05
    # balanced interval-wise OT (the same linear interpolant the growth models use) does not
    assert _branch_error(growing, model_kwargs={"interpolant": "linear", **OPTIM}) > 0.05


@pytest.mark.slow
def test_unbalanced_growth_recovers_branch_proportions(growing):
    assert _branch_error(growing, model_kwargs={"growth": "unbalanced"}) < 0.05


def test_unbalanced_coupling_growth_factor():
    # Source cell 0 has three close descendants, cell 1 one: the first gets more mass.
    x0 = torch.tensor([[0.0], [10.0]])
    x1 = torch.tensor([[0.1], [0.2], [0.3], [10.1]])
    cb = UnbalancedSinkhornCoupling(reg=0.01, reg_m=0.5)(x0, x1, generator=torch.Generator())
    assert cb.source_mass[0] / cb.source_mass[1] > 2
    assert cb.x0.shape == (2, 1)
    assert torch.all((cb.x1 - cb.x0).abs() < 1)  # pairs stay within a lineage


def test_growth_inputs_are_checked(small_adata):
    with pytest.raises(ValueError, match="growth_key='nope'"):
        bioflow.tl.fit_dynamics(
            small_adata, time_key="time", use_rep="X_pca", growth_key="nope", max_steps=1, **FAST
        )
    a = small_adata.copy()
    a.obs["g"] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        bioflow.tl.fit_dynamics(
            a, time_key="time", use_rep="X_pca", growth_key="g", max_steps=1, **FAST
        )
    with pytest.raises(ValueError, match="growth='given' needs"):
        bioflow.tl.fit_dynamics(
            small_adata,
            time_key="time",
            use_rep="X_pca",
            max_steps=1,
            model_kwargs={"growth": "given"},
            **FAST,
        )
    with pytest.raises(ValueError, match="interpolant='linear'"):
        bioflow.models.CellFlowMatching(dim=2, growth="unbalanced", interpolant="spline")
