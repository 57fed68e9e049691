"""Build the documentation and fail on any warning, including a broken reference.

Runs ``sphinx -W --keep-going -n`` (nitpicky) with notebook execution off: the notebooks
are executed by tests/test_notebooks.py, and ``make docs`` executes them for the site.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _build(src: Path, out: Path) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable,
        "-m",
        "sphinx",
        "-W",
        "--keep-going",
        "-n",
        "-E",
        "-q",
        "-D",
        "nb_execution_mode=off",
        "-b",
        "html",
        str(src),
        str(out),
    ]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)


def test_docs_build_without_warnings(tmp_path):
    pytest.importorskip("sphinx", reason="install the docs extra: pip install -e '.[dev,docs]'")
    res = _build(ROOT / "docs", tmp_path / "html")
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
    html = tmp_path / "html"
    for page in (
        "index",
        "installation",
        "quickstart",
        "guide/cell_dynamics",
        "guide/meta_flow_matching",
        "guide/sequences",
        "api",
        "benchmarks",
        "gpu_cluster",
        "reproducing_trajectory_benchmarks",
        "tutorials/cell_dynamics",
        "tutorials/meta_flow_matching",
        "tutorials/sequence_design",
        "generated/bioflow.tl.fit_dynamics",
    ):
        assert (html / f"{page}.html").is_file(), page
    # autodoc rendered the numpy sections of a docstring
    api = (html / "generated" / "bioflow.tl.trajectories.html").read_text()
    assert "key_added" in api and "Examples" in api


def test_docs_build_fails_on_a_broken_reference(tmp_path):
    """The build above would pass vacuously if warnings were not errors: check they are."""
    pytest.importorskip("sphinx")
    src = tmp_path / "src"
    src.mkdir()
    (src / "conf.py").write_text(
        "extensions = ['myst_parser', 'sphinx.ext.autodoc']\nnitpicky = True\n"
    )
    (src / "index.md").write_text(
        "# t\n\nSee {func}`bioflow.tl.no_such_function` and {doc}`missing`.\n"
    )
    res = _build(src, tmp_path / "html")
    assert res.returncode != 0
    assert "no_such_function" in res.stderr and "missing" in res.stderr
