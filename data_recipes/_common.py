"""Shared plumbing of the data recipes: download with checksum, manifest, overwrite guard.

Every recipe is a script with ``--help``; it takes ``--input`` (a local copy of the source
file, used instead of downloading), ``--output`` and ``--force``, writes its output plus
``<output>.manifest.json`` (sources, checksums, steps, package versions), and refuses to
replace an existing output whose content differs unless ``--force`` is given.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import sys
import tempfile
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

CHUNK = 1 << 20


def sha256sum(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def plain_name(name: str) -> str:
    """``name`` if it is a plain file name (no folder part, not ``.``/``..``), else an error.

    A name with a folder part could make a download land outside the cache folder.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"no usable file name: {name!r}")
    if os.path.basename(name.replace("\\", "/")) != name or name in (".", "..") or ("\x00" in name):
        raise ValueError(
            f"refusing the file name {name!r}: it is not a plain file name (it could write "
            "outside the cache folder)"
        )
    return name


def download(url: str, dest: str | os.PathLike, sha256: str | None = None) -> Path:
    """Download ``url`` to ``dest`` (streamed), verifying ``sha256`` when given.

    An existing ``dest`` with the right checksum is reused.  A checksum mismatch removes
    the download and raises ``ValueError``.  The download goes to a temporary file in the
    folder of ``dest``, is fsynced and renamed: an interrupted download never leaves a
    partial ``dest``.
    """
    dest = Path(dest)
    plain_name(dest.name)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists() and (sha256 is None or sha256sum(dest) == sha256):
        return dest
    req = urllib.request.Request(url, headers={"User-Agent": "bioflow-data-recipe"})
    with tempfile.NamedTemporaryFile(
        dir=dest.parent, prefix=f".{dest.name}.", suffix=".part", delete=False
    ) as tmp:
        try:
            with urllib.request.urlopen(req, timeout=120) as resp:
                shutil.copyfileobj(resp, tmp, CHUNK)
            tmp.flush()
            os.fsync(tmp.fileno())
        except BaseException:
            Path(tmp.name).unlink(missing_ok=True)
            raise
    tmp_path = Path(tmp.name)
    if sha256 is not None and sha256sum(tmp_path) != sha256:
        got = sha256sum(tmp_path)
        tmp_path.unlink()
        raise ValueError(f"checksum mismatch for {url}: expected {sha256}, got {got}")
    tmp_path.replace(dest)
    return dest


def fetch(source: dict, local: str | None, cache_dir: str | os.PathLike) -> tuple[Path, dict]:
    """The source file: ``local`` when given (checksum recorded, not enforced), else downloaded.

    Returns
    -------
    path, record
        Where the file is, and the manifest record ``{url, file, sha256, verified}``.
    """
    if local is not None:
        path = Path(local)
        if not path.exists():
            raise ValueError(f"--input {local!r} does not exist")
        digest = sha256sum(path)
        verified = source.get("sha256") is not None and digest == source["sha256"]
    else:
        name = plain_name(source["file"])
        path = download(source["url"], Path(cache_dir) / name, source.get("sha256"))
        digest, verified = sha256sum(path), source.get("sha256") is not None
    return path, {
        "url": source["url"],
        "file": str(path),
        "sha256": digest,
        "verified_against_published_checksum": verified,
    }


def write_atomically(write, output: str | os.PathLike, force: bool) -> str:
    """Call ``write(tmp_path)``, then move the result to ``output`` unless a *different*
    file is already there (identical content is accepted; ``--force`` replaces)."""
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".tmp", dir=output.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    digest = sha256sum(tmp)
    if output.exists() and not force and sha256sum(output) != digest:
        tmp.unlink()
        raise SystemExit(f"{output} exists with different content; pass --force to replace it")
    mask = os.umask(0)
    os.umask(mask)
    tmp.chmod(0o666 & ~mask)
    tmp.replace(output)
    return digest


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` through a fsynced temporary file in the same folder."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def versions() -> dict:
    """Versions of the packages a recipe used."""
    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    from importlib.metadata import PackageNotFoundError, version

    for name in ("numpy", "scipy", "pandas", "anndata", "scanpy", "scikit-learn", "bioflow"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


def write_manifest(
    output: str | os.PathLike,
    *,
    recipe: str,
    sources: list[dict],
    steps: list[str],
    output_sha256: str,
    extra: dict | None = None,
) -> Path:
    """Write ``<output>.manifest.json`` describing how ``output`` was made."""
    path = Path(str(output) + ".manifest.json")
    manifest = {
        "recipe": recipe,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "output": str(output),
        "output_sha256": output_sha256,
        "sources": sources,
        "steps": steps,
        "versions": versions(),
        **(extra or {}),
    }
    write_text_atomic(path, json.dumps(manifest, indent=2))
    return path


def base_parser(description: str, default_output: str) -> argparse.ArgumentParser:
    """Argument parser with the options every recipe shares."""
    p = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--output", default=default_output, help=f"output .h5ad (default {default_output})"
    )
    p.add_argument("--cache-dir", default="data/raw", help="where downloads are kept")
    p.add_argument("--force", action="store_true", help="replace an existing, different output")
    return p
