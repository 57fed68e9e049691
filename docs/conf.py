"""Sphinx configuration: MyST pages, myst-nb notebooks, autodoc + napoleon API reference.

Build with ``make docs`` (notebooks executed, cached in ``docs/_build/.jupyter_cache``) or
``python -m sphinx -W --keep-going -n -D nb_execution_mode=off docs docs/_build/html``
(what ``tests/test_docs.py`` runs).
"""

from __future__ import annotations

import filecmp
import os
import shutil
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))
# Notebook kernels are separate processes: make them import this checkout too.
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p
)
os.environ.setdefault("MPLBACKEND", "Agg")

import bioflow  # noqa: E402

project = "bioflow"
author = "bioflow developers"
copyright = "2026, bioflow developers"
version = release = bioflow.__version__

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
]

# --- sources -------------------------------------------------------------------------------
# The tutorials live in notebooks/ (where the tests execute them); copy them next to the
# pages so the toctree can hold them.  Copies are only refreshed when the content changed.
TUTORIALS = DOCS / "tutorials"
TUTORIALS.mkdir(exist_ok=True)
for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
    dest = TUTORIALS / nb.name
    if not dest.exists() or not filecmp.cmp(nb, dest, shallow=False):
        shutil.copyfile(nb, dest)

exclude_patterns = ["_build", "**.ipynb_checkpoints", "Thumbs.db", ".DS_Store"]
templates_path = ["_templates"]
html_static_path = ["_static"]

# --- MyST and notebooks ----------------------------------------------------------------------
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3
nb_execution_mode = "cache"  # the test suite overrides this with -D nb_execution_mode=off
nb_execution_timeout = 600
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_merge_streams = True
nb_output_stderr = "remove"  # library warnings and progress bars, not tutorial content

# --- API reference ---------------------------------------------------------------------------
autosummary_generate = True
autosummary_imported_members = True
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented"
autodoc_default_options = {"members": True, "undoc-members": False}
autodoc_mock_imports: list[str] = []
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
napoleon_use_param = True
napoleon_use_ivar = True  # dataclass fields: one description (autodoc's), not two
autodoc_inherit_docstrings = False  # Lightning's hook docstrings point into its own docs

# The build must work offline (CI reaches only PyPI), so there is no intersphinx: references
# to other packages' objects and to builtins cannot resolve and are ignored here.  Every
# reference to a bioflow object, page or label is still checked (nitpicky, -W).
nitpicky = True
_EXTERNAL = (
    r"(torch|np|numpy|pd|pandas|anndata|ad|lightning|L|pl|matplotlib|mpl|plt|scipy|ot|"
    r"torch_geometric|collections|typing|os|pathlib|jsonargparse|torchdiffeq|numba|scanpy|sc|tqdm|"
    r"Tensor|nn|optim)(\..*)?"
)
nitpick_ignore_regex = [
    (r"py:.*", _EXTERNAL),
    (
        r"py:.*",
        r"(int|float|str|bool|bytes|dict|list|tuple|set|object|None|type|callable|"
        r"Callable|Sequence|Iterable|Iterator|Mapping|Any|Path|PathLike|optional|"
        r"array-like|array_like|default|function|ndarray|DataFrame|AnnData|Axes|"
        r"Figure|Generator|LightningModule|LightningDataModule|Module|Trainer|"
        r"Dataset|IterableDataset|DataLoader|Literal|Self|ellipsis|NoneType)",
    ),
    (r"py:.*", r"(bioflow\.core\.solvers\.ode\.)?VelocityField"),  # a typing alias
]

# --- HTML ------------------------------------------------------------------------------------
# sphinx-book-theme: the theme of the scverse projects (scanpy, scvi-tools, moscot).
html_theme = "sphinx_book_theme"
html_css_files = ["custom.css"]  # examples and signatures wrap (docs/_static/custom.css)
html_title = "bioflow"
html_theme_options = {
    "repository_url": "https://github.com/bioflow/bioflow",
    "use_repository_button": False,
    "show_toc_level": 2,
    "navigation_with_keys": False,
}


# --- short references ------------------------------------------------------------------------
# Docstrings inside a module refer to their neighbours by short name (``:func:`sinkhorn_plan```
# in bioflow.core.couplings.ot), while the reference documents them under their public path
# (bioflow.core.couplings.sinkhorn_plan).  Resolve a short name that matches exactly one
# documented bioflow object; anything else stays a broken reference and fails the build.


def _resolve_short_name(app, env, node, contnode):
    if node.get("refdomain") != "py":
        return None
    target = node.get("reftarget", "").lstrip("~.")
    if not target or target.startswith("bioflow."):
        return None
    domain = env.get_domain("py")
    hits = {}  # one entry per documented object (autodoc also records canonical aliases)
    for name, obj in domain.objects.items():
        if name.startswith("bioflow.") and name.endswith("." + target):
            hits.setdefault((obj.docname, obj.node_id), name)
    if len(hits) != 1:
        return None
    from sphinx.util.nodes import make_refnode

    (docname, node_id), name = next(iter(hits.items()))
    return make_refnode(app.builder, node["refdoc"], docname, node_id, contnode, name)


def setup(app):
    app.connect("missing-reference", _resolve_short_name)
