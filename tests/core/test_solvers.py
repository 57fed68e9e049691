import math

import numpy as np
import pytest
import torch

from bioflow.core import integrate


def _linear(t, x):
    # dx/dt = A x with a rotation-plus-decay matrix: exact solution via matrix exponential
    a = torch.tensor([[-0.5, 2.0], [-2.0, -0.5]], dtype=x.dtype)
    return x @ a.T


def _exact(x0, t0, t1):
    a = torch.tensor([[-0.5, 2.0], [-2.0, -0.5]], dtype=torch.float64)
    return x0 @ torch.matrix_exp(a * (t1 - t0)).T


@pytest.mark.parametrize("method,order", [("euler", 1), ("midpoint", 2), ("rk4", 4)])
def test_order_of_accuracy(method, order):
    x0 = torch.tensor([[1.0, 0.5]], dtype=torch.float64)
    exact = _exact(x0, 0.3, 1.3)
    errs = []
    for steps in (20, 40, 80):
        x = integrate(_linear, x0, [0.3, 1.3], method=method, steps=steps)
        errs.append((x - exact).norm().item())
    rates = [math.log2(errs[i] / errs[i + 1]) for i in range(2)]
    assert all(abs(r - order) < 0.3 for r in rates), rates


def test_dopri5_and_backward_integration():
    x0 = torch.tensor([[1.0, -1.0]], dtype=torch.float64)
    fwd = integrate(_linear, x0, [0.0, 2.0], method="dopri5", rtol=1e-9, atol=1e-9)
    assert torch.allclose(fwd, _exact(x0, 0.0, 2.0), atol=1e-7)
    back = integrate(_linear, fwd, [2.0, 0.0], method="rk4", steps=400)
    assert torch.allclose(back, x0, atol=1e-6)


def test_return_path_at_uneven_times():
    x0 = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    times = [0.0, 0.1, 0.7, 1.0]
    path = integrate(_linear, x0, times, method="rk4", steps=200, return_path=True)
    assert path.shape == (4, 1, 2)
    for k, t in enumerate(times):
        assert torch.allclose(path[k], _exact(x0, 0.0, t), atol=1e-7)


def test_midpoint_and_errors():
    out = integrate(lambda t, x: -x, torch.ones(3, 1), [0.0, 1.0], method="midpoint", steps=100)
    assert np.allclose(out.numpy(), math.exp(-1), atol=1e-4)
    with pytest.raises(ValueError, match="monotone"):
        integrate(lambda t, x: x, torch.ones(1, 1), [0.0, 1.0, 0.5])
    with pytest.raises(ValueError, match="unknown ODE method"):
        integrate(lambda t, x: x, torch.ones(1, 1), [0.0, 1.0], method="rk45")
    with pytest.raises(ValueError, match="at least two"):
        integrate(lambda t, x: x, torch.ones(1, 1), [0.0])
