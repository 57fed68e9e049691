import numpy as np
import pytest

from bioflow.metrics import compare_distributions, correlation_r, mmd_rbf, wasserstein


def test_wasserstein_hand_solved():
    x = np.array([[0.0, 0.0], [1.0, 0.0]])
    y = np.array([[0.0, 3.0], [1.0, 3.0]])
    assert wasserstein(x, y, 1) == pytest.approx(3.0)
    assert wasserstein(x, y, 2) == pytest.approx(3.0)
    # 1-D: W1 between sorted samples is the mean absolute difference of order statistics
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=50), rng.normal(2, 1, size=50)
    assert wasserstein(a, b, 1) == pytest.approx(np.abs(np.sort(a) - np.sort(b)).mean())


def test_weighted_wasserstein():
    x = np.array([[0.0], [10.0]])
    y = np.array([[0.0]])
    assert wasserstein(x, y, 1, x_weights=[0.9, 0.1]) == pytest.approx(1.0)


def test_mmd_properties():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(200, 3))
    assert mmd_rbf(a, a) == pytest.approx(0.0, abs=1e-12)
    near = mmd_rbf(a, rng.normal(size=(200, 3)))
    far = mmd_rbf(a, rng.normal(3, 1, size=(200, 3)))
    assert far > 10 * near


def test_correlation_r():
    rng = np.random.default_rng(2)
    z = rng.normal(size=(500, 1))
    x = np.hstack([z, 2 * z + 0.1 * rng.normal(size=(500, 1)), rng.normal(size=(500, 2))])
    assert correlation_r(x, x[::-1]) == pytest.approx(1.0)
    assert correlation_r(x, rng.normal(size=(500, 4))) < 0.9


def test_metric_errors():
    with pytest.raises(ValueError, match="features"):
        wasserstein(np.zeros((3, 2)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="NaN"):
        compare_distributions(np.array([[np.nan, 0.0]]), np.zeros((2, 2)))
