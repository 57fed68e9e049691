"""Every measured figure quoted in README.md or docs/ comes from a committed result file.

A number with two or more decimals in the prose (code blocks, inline code and math are
left out) must equal, at the precision quoted, a number in some
``benchmarks/results/*.json`` (or ``.jsonl``).  A line that quotes *published* or
*reported* figures (other papers' numbers) instead needs each of them in a benchmark
script, where it is printed beside the measurement.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
PAGES = [p for p in PAGES if "_build" not in p.parts and "generated" not in p.parts]
NUMBER = re.compile(r"(?<![\w.=/-])(\d+\.\d{2,})(?!\w|\.\d)")
VERSION = re.compile(r"(Python|torch|version|v)\s*$", re.I)  # "Python 3.10" is no figure


def _blank(m: re.Match) -> str:
    return "\n" * m.group(0).count("\n")  # keep the line numbers


def _prose(text: str) -> str:
    text = re.sub(r"```.*?```", _blank, text, flags=re.S)  # fenced code
    text = re.sub(r"\$\$.*?\$\$", _blank, text, flags=re.S)  # display math
    text = re.sub(r"`[^`\n]*`", "", text)  # inline code
    text = re.sub(r"\$[^$\n]*\$", "", text)  # inline math
    return re.sub(r"<[^>\n]*>", "", text)  # html tags (image attributes)


def quoted_figures(text: str) -> list[tuple[int, str, bool]]:
    """(line, figure, in a paragraph quoting published figures) for every figure in the prose.

    The line is where the figure's paragraph starts.
    """
    out = []
    lines = _prose(text).splitlines()
    start = 0
    while start < len(lines):
        end = start
        while end < len(lines) and lines[end].strip():
            end += 1
        para = " ".join(lines[start:end])
        published = bool(re.search(r"publish|reported|paper", para, re.I))
        for m in NUMBER.finditer(para):
            if not VERSION.search(para[: m.start()]):
                out.append((start + 1, m.group(1), published))
        start = end + 1
    return out


def _numbers(obj):
    if isinstance(obj, bool):
        return
    if isinstance(obj, int | float):
        yield float(obj)
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _numbers(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _numbers(v)


def committed_numbers() -> list[float]:
    vals: list[float] = []
    for path in sorted((ROOT / "benchmarks" / "results").glob("*.json*")):
        text = path.read_text()
        docs = (
            [json.loads(line) for line in text.splitlines() if line.strip()]
            if path.suffix == ".jsonl"
            else [json.loads(text)]
        )
        for d in docs:
            vals += list(_numbers(d))
    return vals


def _matches(figure: str, values) -> bool:
    decimals = len(figure.split(".")[1])
    target = float(figure)
    tol = 0.5 * 10 ** (-decimals) + 1e-12
    return any(abs(v - target) <= tol for v in values)


def test_the_figure_finder_sees_prose_and_skips_code():
    text = "W1 0.460 and `0.123` and $0.5$\n\n```\nx = 0.999\n```\nthe paper\nreports 0.790.\n"
    text += "\nPython 3.10 or newer"
    assert quoted_figures(text) == [(1, "0.460", False), (6, "0.790", True)]
    assert _matches("0.460", [0.4604]) and not _matches("0.460", [0.4606])


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_quoted_figures_are_committed(page):
    values = committed_numbers()
    scripts = "\n".join(p.read_text() for p in (ROOT / "benchmarks").glob("*.py"))
    missing = []
    for line, fig, published in quoted_figures(page.read_text()):
        if published:
            if fig not in scripts and fig.rstrip("0") not in scripts:
                missing.append(f"line {line}: published {fig} is in no benchmark script")
        elif not _matches(fig, values):
            missing.append(f"line {line}: {fig} is in no benchmarks/results/*.json")
    assert not missing, f"{page.name}: " + "; ".join(missing)
