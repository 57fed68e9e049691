"""No tracked file may carry unresolved merge-conflict markers (README.md once did)."""

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_OPEN = re.compile(r"^<{7}(?: |$)")
_BASE = re.compile(r"^\|{7}(?: |$)")
_SPLIT = re.compile(r"^={7}$")
_CLOSE = re.compile(r"^>{7}(?: |$)")


def conflict_lines(text: str) -> list[int]:
    """1-based numbers of the conflict-marker lines of ``text``.

    ``<<<<<<<``, ``|||||||`` and ``>>>>>>>`` lines always count; a ``=======`` line counts
    inside an open conflict only (elsewhere it is a heading underline).
    """
    found, inside = [], False
    for i, line in enumerate(text.splitlines(), 1):
        if _OPEN.match(line):
            found.append(i)
            inside = True
        elif _CLOSE.match(line):
            found.append(i)
            inside = False
        elif _BASE.match(line) or (inside and _SPLIT.match(line)):
            found.append(i)
    return found


def test_conflict_lines_finds_every_marker():
    text = "a\n<<<<<<< HEAD\nb\n||||||| base\n=======\nc\n>>>>>>> branch\nTitle\n=======\n"
    assert conflict_lines(text) == [2, 4, 5, 7]
    assert conflict_lines("Title\n=======\n<<<<<<<<< not a marker\n") == []


def test_no_tracked_file_has_conflict_markers():
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    bad = []
    for name in filter(None, out.decode().split("\0")):
        path = ROOT / name
        if not path.is_file():
            continue
        data = path.read_bytes()
        if b"\0" in data:  # binary
            continue
        lines = conflict_lines(data.decode("utf-8", errors="replace"))
        bad += [f"{name}:{n}" for n in lines]
    assert not bad, f"unresolved merge-conflict markers at {bad}"
