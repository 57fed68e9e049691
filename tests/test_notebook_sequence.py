"""Execute notebooks/sequence_design.ipynb end to end (small settings)."""

import os
from pathlib import Path

import pytest

NB = Path(__file__).resolve().parents[1] / "notebooks" / "sequence_design.ipynb"


def test_sequence_design_notebook_runs(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(NB, as_version=4)
    assert all(c.get("outputs", []) == [] for c in nb.cells if c.cell_type == "code")
    env_path = os.environ.get("PYTHONPATH", "")
    root = str(NB.parents[1])
    os.environ["PYTHONPATH"] = root + (os.pathsep + env_path if env_path else "")
    os.environ.setdefault("MPLBACKEND", "Agg")
    client = nbclient.NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    text = "".join(
        o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
    )
    assert "'guided'" in text and "SequenceFlow" in text
