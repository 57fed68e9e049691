"""Zenodo downloads and the folder manifest of the sequence recipes (promoters, enhancers)."""

from __future__ import annotations

import hashlib
import json
import os
import urllib.request
from pathlib import Path

from _common import sha256sum as sha256  # noqa: E402
from _common import write_text_atomic  # noqa: E402


def guard(out_dir: Path, names: list[str], overwrite: bool) -> None:
    """Refuse to replace existing outputs unless ``overwrite``."""
    existing = [n for n in names if (out_dir / n).exists()]
    if existing and not overwrite:
        raise SystemExit(
            f"error: {', '.join(existing)} already exist in {out_dir}; pass --overwrite to "
            "replace them"
        )


def safe_name(name: str) -> str:
    """The base name of a file name taken from a remote listing, refused if it escapes.

    A name such as ``../x`` or ``/etc/x`` would write outside the output folder.
    """
    if not isinstance(name, str) or not name:
        raise SystemExit(f"error: the record lists a file without a usable name: {name!r}")
    base = os.path.basename(name.replace("\\", "/"))
    if base != name or base in (".", "..") or "\x00" in base:
        raise SystemExit(
            f"error: refusing the remote file name {name!r}: it is not a plain file name "
            "(a path could write outside --out)"
        )
    return base


def verify_checksum(path: Path, checksum: str | None) -> None:
    """Check ``path`` against a Zenodo checksum string such as ``"md5:<hex>"``."""
    if not checksum:
        return
    algo, _, expected = checksum.partition(":")
    if algo.lower() not in hashlib.algorithms_available or not expected:
        raise SystemExit(f"error: cannot verify {path.name}: unknown checksum {checksum!r}")
    h = hashlib.new(algo.lower())
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    if h.hexdigest() != expected.lower():
        path.unlink(missing_ok=True)
        raise SystemExit(
            f"error: {path.name} failed its {algo} checksum (got {h.hexdigest()}, the record "
            f"publishes {expected}); the partial or altered download was removed"
        )


def zenodo_download(record: str, want: list[str], dest: Path) -> list[Path]:
    """Download the files of Zenodo ``record`` whose names contain one of ``want``.

    Each name is reduced to a plain base name inside ``dest`` and each file is checked
    against the checksum the record publishes.
    """
    with urllib.request.urlopen(f"https://zenodo.org/api/records/{record}", timeout=60) as r:
        meta = json.load(r)
    got = []
    for f in meta.get("files", []):
        name = safe_name(f.get("key") or f.get("filename"))
        if any(w in name for w in want):
            url = f["links"].get("self") or f["links"].get("download")
            target = dest / name
            tmp = dest / f".{name}.part"
            urllib.request.urlretrieve(url, tmp)
            verify_checksum(tmp, f.get("checksum"))
            os.replace(tmp, target)
            got.append(target)
    if not got:
        raise SystemExit(f"error: record {record} has no file matching {want}")
    return got


def write_manifest(out_dir: Path, recipe: str, source: str, files: list[str], extra: dict) -> Path:
    manifest = {
        "recipe": recipe,
        "source": source,
        "files": {
            n: {"sha256": sha256(out_dir / n), "bytes": (out_dir / n).stat().st_size} for n in files
        },
        **extra,
    }
    path = out_dir / "manifest.json"
    write_text_atomic(path, json.dumps(manifest, indent=1))
    return path
