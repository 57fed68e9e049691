"""The scanpy / scverse conventions of ``bioflow.tl`` and ``bioflow.pl``, checked by walking
the modules.

Rules (see docs/guide/conventions.md):

1. Data first.  Tools take ``adata`` first; tools that apply a fitted model take
   ``model, adata``.  Plots take what they draw first (``adata``).  Exceptions, each with
   its reason, are listed in ``DATA_ARGS`` below.
2. Every option after the data arguments is keyword-only.
3. A tool that annotates an AnnData has ``key_added`` and ``copy=False``, returns ``None``
   unless ``copy=True``, and records its parameters in ``adata.uns["bioflow"][key_added]``.
   Every other tool that takes an AnnData leaves it unchanged (checked by running it).
4. Plots accept keyword-only ``ax=``, ``show=`` and ``save=``, draw into the given axes,
   save to the given file and return the axes when not shown (``show=False``).
5. Every public function has a numpy-style docstring with Parameters (naming every
   argument), Returns and Examples; the examples run (``doctest``).
"""

from __future__ import annotations

import doctest
import importlib
import inspect
import pkgutil
import re

import numpy as np
import pytest

import bioflow

PACKAGES = {"tl": bioflow.tl, "pl": bioflow.pl}

# Exceptions to "adata first" / "model, adata first": the data arguments of each.
DATA_ARGS = {
    # sequence tools work on sequences, not AnnData (issue 4 names them so)
    "tl.fit_sequence_flow": ("sequences",),
    "tl.fit_sequence_classifier": ("sequences", "targets"),
    "tl.sample_sequences": ("model", "n"),
    # plots of a result table take the table returned by tl.evaluate_holdout
    "pl.holdout": ("results",),
    # initial, predicted and observed cells: three AnnData side by side
    "pl.populations": ("adata", "prediction", "truth"),
    "pl.sequence_logo": ("sequences",),
}
# Tools that write into the AnnData they are given.
ANNOTATES = {"tl.trajectories", "tl.velocity", "tl.velocity_embedding", "tl.fate_probabilities"}


def _public_functions():
    """(qualified name, function) for every public function of tl and pl and their modules."""
    found = {}
    for short, pkg in PACKAGES.items():
        for name in pkg.__all__:
            found[f"{short}.{name}"] = getattr(pkg, name)
        for info in pkgutil.iter_modules(pkg.__path__):
            if info.name.startswith("_"):
                continue
            mod = importlib.import_module(f"{pkg.__name__}.{info.name}")
            for name, obj in vars(mod).items():
                if (
                    inspect.isfunction(obj)
                    and not name.startswith("_")
                    and obj.__module__ == mod.__name__
                ):
                    found.setdefault(f"{short}.{name}", obj)
    return sorted(found.items())


FUNCTIONS = _public_functions()
IDS = [name for name, _ in FUNCTIONS]


def test_walk_finds_every_family():
    names = set(IDS)
    for expected in (
        "tl.fit_dynamics",
        "tl.fit_meta_flow",
        "tl.fit_sequence_flow",
        "tl.trajectories",
        "pl.trajectories",
        "pl.populations",
        "pl.sequence_logo",
        "pl.holdout",
    ):
        assert expected in names
    assert set(DATA_ARGS) <= names and ANNOTATES <= names, "stale exception list"


def _expected_data_args(name, params):
    if name in DATA_ARGS:
        return DATA_ARGS[name]
    return ("model", "adata") if params and params[0].name == "model" else ("adata",)


@pytest.mark.parametrize(("name", "func"), FUNCTIONS, ids=IDS)
def test_data_first_then_keyword_only(name, func):
    params = list(inspect.signature(func).parameters.values())
    data = _expected_data_args(name, params)
    assert tuple(p.name for p in params[: len(data)]) == data, (
        f"{name}: data arguments should be {data}"
    )
    for p in params[: len(data)]:
        assert p.kind is p.POSITIONAL_OR_KEYWORD, f"{name}: {p.name} must be positional"
    for p in params[len(data) :]:
        assert p.kind in (p.KEYWORD_ONLY, p.VAR_KEYWORD), f"{name}: {p.name} not keyword-only"
        assert not isinstance(p.default, list | dict | set | np.ndarray), (
            f"{name}: mutable default for {p.name}"
        )


@pytest.mark.parametrize(("name", "func"), FUNCTIONS, ids=IDS)
def test_key_added_and_copy(name, func):
    params = inspect.signature(func).parameters
    if name in ANNOTATES:
        assert "key_added" in params and "copy" in params, f"{name} annotates an AnnData"
    if "key_added" in params or "copy" in params:
        assert "key_added" in params and "copy" in params, f"{name}: key_added needs copy"
        assert params["copy"].default is False


@pytest.mark.parametrize(
    ("name", "func"),
    [f for f in FUNCTIONS if f[0].startswith("pl.")],
    ids=[n for n in IDS if n.startswith("pl.")],
)
def test_plot_arguments(name, func):
    params = inspect.signature(func).parameters
    for arg in ("ax", "show", "save"):
        assert arg in params and params[arg].kind is inspect.Parameter.KEYWORD_ONLY, (
            f"{name} needs keyword-only {arg}="
        )
        assert params[arg].default in (None, False)


# --- docstrings --------------------------------------------------------------------------------

_SECTION = re.compile(r"^(\s*)([A-Z][A-Za-z ]+)\n\1-{3,}\s*$", re.M)


def _sections(doc: str) -> dict[str, str]:
    doc = inspect.cleandoc(doc)
    heads = list(_SECTION.finditer(doc))
    return {
        m.group(2).strip(): doc[m.end() : heads[i + 1].start() if i + 1 < len(heads) else None]
        for i, m in enumerate(heads)
    }


def _documented_params(section: str) -> set[str]:
    names = set()
    for line in section.splitlines():
        if line and not line[0].isspace():
            for part in line.split(":")[0].split(","):
                names.add(part.strip().lstrip("*"))
    return names


@pytest.mark.parametrize(("name", "func"), FUNCTIONS, ids=IDS)
def test_numpy_docstring(name, func):
    doc = func.__doc__
    assert doc and doc.strip(), f"{name} has no docstring"
    sections = _sections(doc)
    for required in ("Parameters", "Returns", "Examples"):
        assert required in sections, f"{name}: no {required} section"
        assert sections[required].strip(), f"{name}: empty {required} section"
    assert ">>>" in sections["Examples"], f"{name}: the example has no code"
    documented = _documented_params(sections["Parameters"])
    for p in inspect.signature(func).parameters:
        assert p in documented, f"{name}: parameter {p!r} is not documented"
    assert not documented - set(inspect.signature(func).parameters), (
        f"{name}: documents parameters it does not have: "
        f"{documented - set(inspect.signature(func).parameters)}"
    )


def test_the_section_parser_can_fail():
    sec = _sections(bioflow.tl.fit_dynamics.__doc__)
    assert {"Parameters", "Returns", "Raises", "Examples"} <= set(sec)
    assert "time_key" in _documented_params(sec["Parameters"])
    assert _sections("Summary only.") == {}


MODULES = sorted({f.__module__ for _, f in FUNCTIONS})


@pytest.mark.parametrize("module", MODULES)
def test_examples_run(module, tmp_path, monkeypatch):
    """The docstring examples are cheap (tiny data, a few training steps): run them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    monkeypatch.chdir(tmp_path)
    mod = importlib.import_module(module)
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    tests = [t for t in finder.find(mod, module) if t.examples]
    assert tests, f"{module} has no examples"
    skipped = [t.name for t in tests for ex in t.examples if ex.options.get(doctest.SKIP)]
    assert not skipped, f"skipped examples (make them cheap instead): {skipped}"
    for t in tests:
        runner.run(t)
        plt.close("all")
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} failing example(s) in {module}"


# --- behaviour -----------------------------------------------------------------------------------


def _snapshot(adata):
    return (
        adata.shape,
        list(adata.obs.columns),
        sorted(adata.obsm.keys()),
        sorted(adata.uns.keys()),
        sorted(adata.uns.get("bioflow", {}).keys()),
        np.asarray(adata.X).sum(),
    )


QUIET = dict(max_steps=3, enable_progress_bar=False)


@pytest.fixture(scope="module")
def cells():
    adata = bioflow.datasets.simulated_differentiation(n_cells_per_time=40, n_times=3, seed=0)
    before = _snapshot(adata)
    model = bioflow.tl.fit_dynamics(adata, time_key="time", use_rep="X_pca", **QUIET)
    assert _snapshot(adata) == before, "fit_dynamics modified adata"
    return adata, model


def test_tools_that_do_not_annotate_leave_adata_alone(cells):
    adata, model = cells
    before = _snapshot(adata)
    pred = bioflow.tl.predict_cells(model, adata, source_time=0.0, target_time=1.0)
    df = bioflow.tl.evaluate_holdout(adata, time_key="time", use_rep="X_pca", **QUIET)
    assert _snapshot(adata) == before
    assert pred.uns["bioflow"]["predict_cells"]["target_time"] == 1.0
    assert set(df["method"]) == {"no-motion", "mccann", "ot-cfm"}

    letters = bioflow.datasets.letters(letters="AB", n_rotations=2, n_points=40)
    before = _snapshot(letters)
    keys = dict(
        population_key="population", source_key="state", source_value="source", use_rep="X_coords"
    )
    meta = bioflow.tl.fit_meta_flow(
        letters, **keys, exclude_populations=["B_1"], model_kwargs={"k": 5, "width": 16}, **QUIET
    )
    out = bioflow.tl.predict_population(meta, letters[letters.obs["population"] == "B_1"])
    bioflow.tl.evaluate_populations(meta, letters, populations=["B_1"])
    assert _snapshot(letters) == before
    assert out.uns["bioflow"]["predict_population"]["method"] == "mfm"


def test_annotating_tool_key_added_copy_and_parameters(cells):
    adata, model = cells
    work = adata.copy()
    assert bioflow.tl.trajectories(model, work, times=[0, 2], key_added="tr") is None
    assert work.obsm["tr"].shape == (work.n_obs, 2, 10)
    params = work.uns["bioflow"]["tr"]
    assert params["times"] == [0, 2] and params["use_rep"] == "X_pca"
    assert {"method", "steps", "time_key"} <= set(params)

    before = _snapshot(work)
    out = bioflow.tl.trajectories(model, work, times=[1], key_added="tr2", copy=True)
    assert out is not work and "tr2" in out.obsm and "tr2" in out.uns["bioflow"]
    assert _snapshot(work) == before, "copy=True modified the input"


def test_plots_draw_into_ax_and_save(cells, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    adata, model = cells
    work = adata.copy()
    bioflow.tl.trajectories(model, work, times=[0, 1, 2])
    df = bioflow.tl.evaluate_holdout(
        work, time_key="time", use_rep="X_pca", baselines=True, methods=(), **QUIET
    )
    seqs = ["ACGT", "ACGA", "TCGA"]
    bioflow.tl.velocity(model, work)
    work.obsm["X_umap"] = work.obsm["X_latent"][:, :2]
    for name, call in [
        ("trajectories", lambda **kw: bioflow.pl.trajectories(work, **kw)),
        (
            "velocity_embedding_stream",
            lambda **kw: bioflow.pl.velocity_embedding_stream(work, **kw),
        ),
        ("holdout", lambda **kw: bioflow.pl.holdout(df, **kw)),
        ("sequence_logo", lambda **kw: bioflow.pl.sequence_logo(seqs, **kw)),
    ]:
        fig, ax = plt.subplots()
        path = tmp_path / f"{name}.png"
        assert call(ax=ax, show=False, save=path) is ax, name
        assert ax.has_data() and path.stat().st_size > 0, name
        plt.close(fig)

    fig, axes = plt.subplots(1, 3)
    path = tmp_path / "populations.png"
    src = work[work.obs["time"] == 0.0]
    got = bioflow.pl.populations(src, src, src, use_rep="X_pca", ax=axes, show=False, save=path)
    assert list(got) == list(axes) and path.stat().st_size > 0
    plt.close("all")
