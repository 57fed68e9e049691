"""Atomic file writes and output-path checks (standard library only).

A file is written to a temporary file in the target's own folder, flushed to disk
(``fsync``) and renamed over the target with :func:`os.replace`, which is atomic on one
filesystem.  A writer killed at any point leaves either the old file or the new one, never
a truncated mix; at worst a hidden ``.<name>.<random>.tmp`` file is left beside it.  The
temporary file never goes to ``$TMPDIR``, which may be another filesystem (where a rename
becomes a copy that a kill can cut short).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from typing import IO

PathLike = str | os.PathLike


def _same_file(a: PathLike, b: PathLike) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def check_output_path(
    path: PathLike, *, overwrite: bool = True, inputs: Iterable[PathLike] = ()
) -> None:
    """Refuse an output path that is one of ``inputs``, or that exists without ``overwrite``.

    Parameters
    ----------
    path
        The file to be written.
    overwrite
        Whether an existing file may be replaced.
    inputs
        Files the output was computed from; writing over them is always refused.

    Raises
    ------
    ValueError
        Naming the path and the reason; also when its folder does not exist or it is a
        folder.

    Examples
    --------
    >>> check_output_path("new_file.h5ad", overwrite=False)
    """
    p = os.fspath(path)
    for src in inputs:
        if src is not None and os.path.exists(p) and _same_file(p, src):
            raise ValueError(
                f"refusing to write {p!r}: it is an input of this run ({os.fspath(src)!r}); "
                "writing it would destroy the input. Choose another output path"
            )
    if os.path.isdir(p):
        raise ValueError(f"cannot write {p!r}: it is a directory")
    folder = os.path.dirname(os.path.abspath(p))
    if not os.path.isdir(folder):
        raise ValueError(f"cannot write {p!r}: the folder {folder!r} does not exist")
    if not overwrite and os.path.exists(p):
        raise ValueError(
            f"{p!r} exists; pass --overwrite (overwrite=True) to replace it, or choose "
            "another output path"
        )


def _fsync_dir(folder: str) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(
    path: PathLike, *, overwrite: bool = True, inputs: Iterable[PathLike] = ()
) -> Iterator[str]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` atomically.

    For writers that take a file name (``AnnData.write_h5ad``, ``torch.save``).  The
    temporary file is fsynced before the rename; on an exception it is removed and
    ``path`` is left as it was.

    Examples
    --------
    >>> with atomic_path("out.h5ad") as tmp:  # doctest: +SKIP
    ...     adata.write_h5ad(tmp)
    """
    check_output_path(path, overwrite=overwrite, inputs=inputs)
    target = os.path.abspath(os.fspath(path))
    folder, name = os.path.split(target)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(folder)


@contextlib.contextmanager
def atomic_open(
    path: PathLike,
    mode: str = "w",
    *,
    overwrite: bool = True,
    inputs: Iterable[PathLike] = (),
) -> Iterator[IO]:
    """Open a temporary file beside ``path`` for writing; it replaces ``path`` on success.

    Text mode writes UTF-8 with ``\\n`` line ends.

    Examples
    --------
    >>> with atomic_open("notes.txt") as fh:  # doctest: +SKIP
    ...     fh.write("hello\\n")
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"mode must be 'w' or 'wb', got {mode!r}")
    with atomic_path(path, overwrite=overwrite, inputs=inputs) as tmp:
        kwargs = {} if mode == "wb" else {"encoding": "utf-8", "newline": "\n"}
        with open(tmp, mode, **kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())


def write_atomic(
    path: PathLike,
    write: Callable[[str], object],
    *,
    overwrite: bool = True,
    inputs: Iterable[PathLike] = (),
) -> None:
    """Call ``write(tmp_path)`` and move the result to ``path`` atomically.

    Examples
    --------
    >>> write_atomic("out.h5ad", adata.write_h5ad)  # doctest: +SKIP
    """
    with atomic_path(path, overwrite=overwrite, inputs=inputs) as tmp:
        write(tmp)
