"""benchmarks/meta_letters.py: the summary over seeds and the merge of side-by-side runs."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location(
        "meta_letters_bench", ROOT / "benchmarks" / "meta_letters.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _per_seed(bench, seeds, groups):
    """Fabricated per-seed figures: MFM clearly best on 'test', tied with FM on 'val'."""
    methods = bench.METHODS
    base = {"mfm": 0.20, "fm": 0.25, "cgfm": 0.27, "no-motion": 0.30}
    per = {m: {g: {k: [] for k in bench.METRICS} for g in groups} for m in (*methods, "no-motion")}
    fit_s = {m: [] for m in methods}
    for s in seeds:
        for m in (*methods, "no-motion"):
            for g in groups:
                tie = g == "val" and m in ("mfm", "fm")
                for k in bench.METRICS:
                    per[m][g][k].append(
                        (0.25 if tie else base[m]) + 0.001 * s + (0.0005 * s if m == "fm" else 0)
                    )
        for m in methods:
            fit_s[m].append(10.0 + s)
    return per, fit_s


def _report(bench, seeds, groups, **settings):
    per, fit_s = _per_seed(bench, seeds, groups)
    return {
        "commit": "c" * 40,
        "command": f"python benchmarks/meta_letters.py --seeds {' '.join(map(str, seeds))}",
        "cpu": "test",
        "wall_s": 1.0,
        "settings": {
            "tasks": "letters",
            "methods": list(bench.METHODS),
            "seeds": seeds,
            **settings,
        },
        "letters": bench.task_summary(per, fit_s, groups, bench.METHODS),
    }


def test_task_summary_checks(bench):
    groups = {"val": ["X_0"], "test": ["Y_0"]}
    per, fit_s = _per_seed(bench, [0, 1, 2], groups)
    out = bench.task_summary(per, fit_s, groups, bench.METHODS)
    assert out["mfm"]["test"]["w1"]["per_seed"] == [0.2, 0.201, 0.202]
    assert out["mfm"]["test"]["w1"]["sd"] == pytest.approx(0.001, abs=1e-4)
    assert out["checks"]["test_mfm_vs_fm_w1"]["beats_by_2sd"] is True
    assert out["checks"]["val_mfm_vs_fm_w1"]["beats_by_2sd"] is False  # a tie
    assert out["checks"]["test_mfm_beats_no_motion_w1"] is True


def test_merge_equals_one_run(bench, tmp_path):
    groups = {"val": ["X_0"], "test": ["Y_0"]}
    whole = _report(bench, [0, 1, 2], groups, steps=10)
    a = tmp_path / "a.json"
    b = tmp_path / "b.json"
    a.write_text(json.dumps(_report(bench, [2, 0], groups, steps=10)))
    b.write_text(json.dumps(_report(bench, [1], groups, steps=10)))
    merged = bench.merge([a, b])
    assert merged["settings"]["seeds"] == [0, 1, 2]
    assert [r["seeds"] for r in merged["runs"]] == [[2, 0], [1]]
    assert merged["letters"] == whole["letters"]
    np.testing.assert_allclose(merged["letters"]["fm"]["fit_s"]["per_seed"], [10, 11, 12])


def test_merge_refuses_mismatched_runs(bench, tmp_path):
    groups = {"test": ["Y_0"]}
    a = tmp_path / "a.json"
    b = tmp_path / "b.json"
    a.write_text(json.dumps(_report(bench, [0], groups, steps=10)))
    b.write_text(json.dumps(_report(bench, [1], groups, steps=20)))
    with pytest.raises(ValueError, match="share every setting"):
        bench.merge([a, b])
    b.write_text(json.dumps(_report(bench, [0], groups, steps=10)))
    with pytest.raises(ValueError, match="disjoint seeds"):
        bench.merge([a, b])
