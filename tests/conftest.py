import os

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def small_adata():
    import bioflow

    return bioflow.datasets.simulated_differentiation(n_cells_per_time=120, seed=1)
