import math
from itertools import permutations

import numpy as np
import ot
import pytest
import torch

from bioflow.core import (
    ExactOTCoupling,
    GibbsWeightCoupling,
    IndependentCoupling,
    SinkhornCoupling,
    make_coupling,
)
from bioflow.core.couplings import exact_ot_plan, sinkhorn_plan, squared_distances
from bioflow.core.couplings.assignment import solve_assignment


def _pot_cost(x0, x1):
    c = squared_distances(x0.double(), x1.double()).numpy()
    n, m = c.shape
    return float(ot.emd2(np.full(n, 1 / n), np.full(m, 1 / m), c))


def test_hand_solved_assignment():
    # brute force over all 5! permutations
    rng = np.random.default_rng(0)
    c = rng.random((5, 5))
    best = min(permutations(range(5)), key=lambda p: sum(c[i, p[i]] for i in range(5)))
    assert solve_assignment(c).tolist() == list(best)


@pytest.mark.parametrize("n", [1, 2, 7, 64, 300])
@pytest.mark.parametrize("seed", [0, 1])
def test_exact_coupling_reaches_pot_optimum_equal_sizes(n, seed):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(n, 5, generator=g)
    x1 = torch.randn(n, 5, generator=g) * 2 + 3
    cb = ExactOTCoupling()(x0, x1)
    assert sorted(cb.index1.tolist()) == list(range(n))  # a permutation: nothing dropped
    cost = (cb.x0 - cb.x1).double().pow(2).sum(1).mean().item()
    assert cost == pytest.approx(_pot_cost(x0, x1), rel=1e-6, abs=1e-9)


def test_exact_coupling_with_ties_and_duplicates():
    x0 = torch.tensor([[0.0], [0.0], [1.0], [1.0], [2.0]])
    x1 = torch.tensor([[1.0], [0.0], [2.0], [0.0], [1.0]])
    cb = ExactOTCoupling()(x0, x1)
    assert torch.equal(cb.x0, cb.x1)  # a zero-cost matching exists and must be found


def test_exact_coupling_unequal_sizes_uses_plan_rows():
    g = torch.Generator().manual_seed(3)
    x0, x1 = torch.randn(40, 3, generator=g), torch.randn(25, 3, generator=g) + 1
    plan = exact_ot_plan(x0, x1)
    assert plan.shape == (40, 25)
    assert np.allclose(plan.sum(1), 1 / 40) and np.allclose(plan.sum(0), 1 / 25)
    assert (plan * squared_distances(x0.double(), x1.double()).numpy()).sum() == pytest.approx(
        _pot_cost(x0, x1)
    )
    cb = ExactOTCoupling()(x0, x1, generator=g)
    assert cb.x1.shape == (40, 3)
    # every drawn pair lies in the support of the optimal plan
    assert all(plan[i, j] > 0 for i, j in zip(cb.index0.tolist(), cb.index1.tolist()))


def test_sinkhorn_plan_marginals_and_limit():
    g = torch.Generator().manual_seed(4)
    x0, x1 = torch.randn(30, 2, generator=g), torch.randn(30, 2, generator=g)
    plan = sinkhorn_plan(x0, x1, reg=0.5)
    assert torch.allclose(plan.sum(1), torch.full((30,), 1 / 30, dtype=plan.dtype), atol=1e-6)
    assert torch.allclose(plan.sum(0), torch.full((30,), 1 / 30, dtype=plan.dtype), atol=1e-6)
    # small reg approaches the exact OT cost, large reg the independent coupling
    c = squared_distances(x0.double(), x1.double())
    sharp_plan = sinkhorn_plan(x0, x1, reg=0.02, num_iter=20000)
    assert torch.allclose(sharp_plan.sum(0), plan.sum(0), atol=1e-5)
    sharp = float((sharp_plan * c).sum())
    assert _pot_cost(x0, x1) <= sharp <= 1.05 * _pot_cost(x0, x1)
    flat = float((sinkhorn_plan(x0, x1, reg=1e4) * c).sum())
    assert flat == pytest.approx(float(c.mean()), rel=0.01)
    cb = SinkhornCoupling(reg=0.5)(x0, x1, generator=g)
    assert cb.x1.shape == (30, 2)


def test_gibbs_weights():
    x0 = torch.zeros(3, 4)
    x1 = torch.tensor([[0.0, 0, 0, 0], [3.0, 4, 0, 0], [1.0, 0, 0, 0]])
    coupling = GibbsWeightCoupling(kappa=0.5)
    eps = 0.5 * math.sqrt(4)
    assert coupling.temperature(4) == pytest.approx(eps)
    torch.manual_seed(0)
    cb = coupling(x0, x1)
    expected = torch.exp(-(cb.x0 - cb.x1).norm(dim=1) / eps)
    assert torch.allclose(cb.weight, expected)
    assert sorted(cb.weight.tolist()) == pytest.approx(sorted([1.0, math.exp(-5), math.exp(-1)]))
    sq = GibbsWeightCoupling(epsilon=2.0, cost="sqeuclidean")(x0, x1)
    assert torch.allclose(sq.weight, torch.exp(-(sq.x0 - sq.x1).pow(2).sum(1) / 2.0))


def test_independent_is_permutation_and_errors():
    x0, x1 = torch.randn(10, 2), torch.arange(20.0).reshape(10, 2)
    cb = IndependentCoupling()(x0, x1)
    assert sorted(cb.x1[:, 0].tolist()) == sorted(x1[:, 0].tolist())
    with pytest.raises(ValueError, match="NaN"):
        ExactOTCoupling()(torch.tensor([[np.nan], [0.0]]), torch.zeros(2, 1))
    with pytest.raises(ValueError, match="feature shape"):
        ExactOTCoupling()(torch.zeros(2, 1), torch.zeros(2, 2))
    with pytest.raises(ValueError, match="unknown coupling"):
        make_coupling("greedy")
    with pytest.raises(ValueError, match="reg"):
        SinkhornCoupling(reg=0)
    with pytest.raises(ValueError, match="square"):
        solve_assignment(np.zeros((2, 3)))
