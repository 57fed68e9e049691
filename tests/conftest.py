import os

# One intra-op thread: on the 2-core CI machine, with pytest, DDP workers and notebook kernels
# competing for the cores, two torch threads ran small layers 5-80x slower than one.  Set
# before torch is imported so subprocesses (DDP ranks, kernels) inherit it.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def small_adata():
    import bioflow

    return bioflow.datasets.simulated_differentiation(n_cells_per_time=120, seed=1)
