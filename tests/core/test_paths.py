import math

import pytest
import torch

from bioflow.core import BrownianBridgePath, LinearPath


def test_linear_path_hand_solved():
    x0 = torch.tensor([[0.0, 0.0], [2.0, -2.0]])
    x1 = torch.tensor([[4.0, 2.0], [2.0, 2.0]])
    ps = LinearPath().sample(x0, x1, torch.tensor([0.25, 0.5]), t0=1.0, t1=3.0)
    assert torch.allclose(ps.x_t, torch.tensor([[1.0, 0.5], [2.0, 0.0]]))
    # velocity in absolute time: (x1 - x0) / (t1 - t0)
    assert torch.allclose(ps.u_t, torch.tensor([[2.0, 1.0], [0.0, 2.0]]))
    assert torch.allclose(ps.t, torch.tensor([1.5, 2.0]))


def test_linear_path_noise_level():
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(20000, 1)
    ps = LinearPath(sigma=0.3).sample(x, x, generator=g)
    assert abs(ps.x_t.std().item() - 0.3) < 0.01


@pytest.mark.parametrize("s", [0.1, 0.3, 0.5, 0.9])
def test_brownian_bridge_marginal_variance(s):
    sigma, n = 0.7, 40000
    g = torch.Generator().manual_seed(1)
    x0, x1 = torch.zeros(n, 2), torch.full((n, 2), 3.0)
    ps = BrownianBridgePath(sigma).sample(x0, x1, torch.full((n,), s), generator=g)
    mean = ps.x_t.mean(0)
    var = ps.x_t.var(0)
    assert torch.allclose(mean, torch.full((2,), 3.0 * s), atol=0.02)
    assert torch.allclose(var, torch.full((2,), sigma**2 * s * (1 - s)), rtol=0.05)


def test_brownian_bridge_velocity_matches_formula():
    g = torch.Generator().manual_seed(2)
    x0, x1 = torch.randn(64, 3, generator=g), torch.randn(64, 3, generator=g)
    s = torch.rand(64, generator=g) * 0.9 + 0.05
    path = BrownianBridgePath(0.5)
    ps = path.sample(x0, x1, s, generator=g)
    se = s[:, None]
    mu = (1 - se) * x0 + se * x1
    expected = x1 - x0 + (1 - 2 * se) / (2 * se * (1 - se)) * (ps.x_t - mu)
    assert torch.allclose(ps.u_t, expected, atol=1e-4)
    # score of N(mu, sigma^2 s(1-s))
    assert torch.allclose(ps.score, -(ps.x_t - mu) / (0.25 * se * (1 - se)), atol=1e-3)


def test_bridge_velocity_transports_marginals():
    # E[u | x_t] integrated by finite differences: the mean moves at (x1 - x0)/dt
    ps = BrownianBridgePath(0.2).sample(torch.zeros(5000, 1), torch.ones(5000, 1), t0=0.0, t1=2.0)
    assert math.isclose(ps.u_t.mean().item(), 0.5, abs_tol=0.05)


def test_path_errors():
    with pytest.raises(ValueError, match="same shape"):
        LinearPath().sample(torch.zeros(3, 2), torch.zeros(4, 2))
    with pytest.raises(ValueError, match="sigma"):
        BrownianBridgePath(0.0)
    with pytest.raises(ValueError, match="non-zero"):
        LinearPath().sample(torch.zeros(3, 2), torch.zeros(3, 2), t0=1.0, t1=1.0)
