"""Execute every tutorial in notebooks/ top to bottom with its small settings.

The notebooks read ``BIOFLOW_NB_FAST=1`` in their parameter cell; the documentation build
runs them with the defaults.  Each must finish in under two minutes on 2 CPU cores, raise
no error, draw at least one figure and print what its text promises.
"""

import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
TIME_LIMIT_S = 120

# notebook -> strings its outputs must contain
EXPECTED = {
    "cell_dynamics.ipynb": [
        "mccann",
        "no-motion",
        "ot-cfm",
        "(600, 21, 10) (600, 21, 2)",
        "'cell120-pred2.0'",
        "val/w1",
    ],
    "meta_flow_matching.ipynb": ["no-motion", "mfm", "fm"],
    "sequence_design.ipynb": ["'guided'", "DiscreteFlow"],
}


def test_every_notebook_is_covered():
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == sorted(EXPECTED)


def _text(output) -> str:
    if output.get("output_type") == "stream":
        return output.get("text", "")
    data = output.get("data", {})
    return str(data.get("text/plain", "")) + str(data.get("text/html", ""))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_notebook_runs(name, tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.get("outputs", []) == [] for c in code), "commit notebooks without outputs"
    assert any("parameters" in c.metadata.get("tags", []) for c in code), "no parameter cell"
    # the kernel is a child process: it inherits these
    monkeypatch.setenv("BIOFLOW_NB_FAST", "1")
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # import this checkout, not another install
    monkeypatch.setenv("MPLBACKEND", "Agg")
    client = nbclient.NotebookClient(
        nb,
        timeout=TIME_LIMIT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    start = time.perf_counter()
    client.execute()
    elapsed = time.perf_counter() - start
    print(f"{name}: {elapsed:.1f} s")
    outputs = [o for c in code for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = "".join(_text(o) for o in outputs)
    for needle in EXPECTED[name]:
        assert needle in text, f"{name}: {needle!r} not in the outputs"
    assert any("image/png" in o.get("data", {}) for o in outputs), f"{name} draws no figure"
    if name == "cell_dynamics.ipynb":  # the scanpy workflow: every figure on the UMAP
        for c in code:
            if any("image/png" in o.get("data", {}) for o in c.get("outputs", [])):
                assert "umap" in c.source.lower(), f"a figure not on the UMAP: {c.source[:80]}"
    assert elapsed < TIME_LIMIT_S, f"{name} took {elapsed:.0f} s (limit {TIME_LIMIT_S} s)"
