"""Rows of an ``.h5ad`` file read on demand, so a batch costs O(batch) whatever the file size.

:class:`H5Rows` reads rows of a dense matrix (``X`` or ``obsm[key]``) straight from the
file: through a read-only memory map when the dataset is stored contiguous and
uncompressed (what ``anndata`` writes by default), else by sorted HDF5 index reads.
:class:`H5adView` is the small read-only part of an AnnData a data stream needs: ``.obs``
and ``.var_names`` in memory, matrices as :class:`H5Rows`.
"""

from __future__ import annotations

import os

import numpy as np

_SCAN_ROWS = 1 << 20  # rows per chunk of the finiteness scan


class H5Rows:
    """Read-only rows of a dense 2-D dataset of an HDF5 file, as float32.

    The file is opened lazily in every process that reads (the object pickles to loader
    workers without its handles).

    Parameters
    ----------
    path
        The ``.h5ad`` (HDF5) file.
    key
        Dataset path inside it, e.g. ``"X"`` or ``"obsm/X_pca"``.

    Attributes
    ----------
    shape
        ``(n_rows, n_features)`` of the dataset.

    Examples
    --------
    >>> import numpy as np, anndata as ad
    >>> a = ad.AnnData(np.arange(12, dtype=np.float32).reshape(4, 3))
    >>> a.write_h5ad("rows.h5ad")  # doctest: +SKIP
    >>> H5Rows("rows.h5ad", "X")[np.array([2, 0])]  # doctest: +SKIP
    array([[6., 7., 8.],
           [0., 1., 2.]], dtype=float32)
    """

    ndim = 2

    def __init__(self, path: str | os.PathLike, key: str) -> None:
        import h5py

        self.path, self.key = os.fspath(path), key
        with h5py.File(self.path, "r") as f:
            if key not in f or not isinstance(f[key], h5py.Dataset):
                raise ValueError(f"{key!r} of {self.path!r} is not a dense dataset")
            ds = f[key]
            if ds.ndim != 2:
                raise ValueError(f"{key!r} of {self.path!r} must be 2-D, got shape {ds.shape}")
            if not np.issubdtype(ds.dtype, np.number):
                raise ValueError(f"{key!r} of {self.path!r} has non-numeric dtype {ds.dtype}")
            self.shape = tuple(int(v) for v in ds.shape)
            self._disk_dtype = np.dtype(ds.dtype)
            contiguous = ds.chunks is None and ds.compression is None
            self._offset = ds.id.get_offset() if contiguous else None
        self._mm = None
        self._ds = None

    dtype = np.dtype(np.float32)

    def __len__(self) -> int:
        return self.shape[0]

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_mm"] = state["_ds"] = None  # reopened in the receiving process
        return state

    def _open(self):
        if self._mm is None and self._ds is None:
            if self._offset is not None:
                self._mm = np.memmap(
                    self.path,
                    dtype=self._disk_dtype,
                    mode="r",
                    offset=self._offset,
                    shape=self.shape,
                )
            else:
                import h5py

                self._ds = h5py.File(self.path, "r")[self.key]
        return self._mm if self._mm is not None else self._ds

    def __getitem__(self, rows) -> np.ndarray:
        """Rows ``(k, n_features)`` float32 for an index array (any order, repeats allowed)
        or a slice."""
        src = self._open()
        if isinstance(rows, slice):
            return np.asarray(src[rows], dtype=np.float32)
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        if src is self._mm:
            return np.asarray(self._mm[rows], dtype=np.float32)
        uniq, inverse = np.unique(rows, return_inverse=True)  # h5py wants increasing indices
        return np.asarray(src[uniq], dtype=np.float32)[inverse]

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = self[slice(None)]
        return out if dtype is None else out.astype(dtype)

    def check_finite(self, name: str) -> None:
        """Raise ``ValueError`` naming ``name`` if any value is NaN or infinite (chunked scan)."""
        bad_values = bad_rows = 0
        for start in range(0, self.shape[0], _SCAN_ROWS):
            block = self[slice(start, start + _SCAN_ROWS)]
            bad = ~np.isfinite(block)
            if bad.any():
                bad_values += int(bad.sum())
                bad_rows += int(bad.any(axis=1).sum())
        if bad_values:
            raise ValueError(f"{name} contains {bad_values} NaN/inf values in {bad_rows} cells")

    def __repr__(self) -> str:
        return f"H5Rows({self.path!r}, {self.key!r}, shape={self.shape})"


class H5adView:
    """Read-only view of an ``.h5ad`` file: ``.obs`` and ``.var_names`` in memory, dense
    matrices read row by row on demand (:meth:`rows`).

    Parameters
    ----------
    path
        An ``.h5ad`` file.

    Raises
    ------
    ValueError
        If ``path`` does not exist.
    """

    isbacked = True

    def __init__(self, path: str | os.PathLike) -> None:
        import h5py
        from anndata.io import read_elem

        self.filename = os.fspath(path)
        if not os.path.exists(self.filename):
            raise ValueError(f"no .h5ad file at {self.filename!r}")
        with h5py.File(self.filename, "r") as f:
            self.obs = read_elem(f["obs"])
            self.var_names = read_elem(f["var"]).index if "var" in f else None
            self._obsm = list(f["obsm"].keys()) if "obsm" in f else []
            self._x_dense = "X" in f and isinstance(f["X"], h5py.Dataset)

    @property
    def n_obs(self) -> int:
        return len(self.obs)

    @property
    def obsm(self) -> list[str]:
        """Keys of ``.obsm`` in the file."""
        return list(self._obsm)

    def can_stream(self, use_rep: str | None) -> bool:
        """Whether ``X`` (``use_rep=None``) or ``obsm[use_rep]`` is a dense dataset."""
        if use_rep is None:
            return self._x_dense
        import h5py

        with h5py.File(self.filename, "r") as f:
            return use_rep in self._obsm and isinstance(f["obsm"][use_rep], h5py.Dataset)

    def rows(self, use_rep: str | None) -> H5Rows:
        """The matrix modelled, as :class:`H5Rows`, after a chunked NaN/inf scan.

        Raises
        ------
        ValueError
            If ``use_rep`` is not a key of ``.obsm``, the matrix is not dense or holds NaN/inf.
        """
        if use_rep is not None and use_rep not in self._obsm:
            raise ValueError(
                f"use_rep={use_rep!r} is not a key of adata.obsm; available: {self._obsm}"
            )
        key = "X" if use_rep is None else f"obsm/{use_rep}"
        rows = H5Rows(self.filename, key)
        if rows.shape[0] != self.n_obs:
            raise ValueError(f"{key} has {rows.shape[0]} rows, adata.obs has {self.n_obs}")
        rows.check_finite("adata.X" if use_rep is None else f"adata.obsm[{use_rep!r}]")
        return rows
