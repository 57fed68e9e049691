"""Plots of sequence sets: per-position letter frequencies (a simple sequence logo)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from bioflow.pl._utils import finish, get_axes

_COLORS = {"A": "tab:green", "C": "tab:blue", "G": "tab:orange", "T": "tab:red"}


def sequence_logo(
    sequences: Sequence[str],
    *,
    alphabet: str = "dna",
    kind: str = "frequency",
    ax=None,
    show: bool | None = None,
    save: str | os.PathLike | None = None,
    title: str | None = None,
):
    """Stacked bars of per-position letter frequencies (or information, in bits).

    Parameters
    ----------
    sequences
        Equal-length strings.
    alphabet
        ``"dna"``, ``"protein"`` or letters.
    kind
        ``"frequency"`` (bars sum to 1) or ``"information"`` (frequency times the
        position's information content ``log2 K - H``, as in a sequence logo).
    ax, show, save
        Axes to draw on, whether to show, and a path to save the figure to.
    title
        Axes title.

    Returns
    -------
    matplotlib.axes.Axes
        The axes drawn on: one stack of ``K`` bars at each of the ``L`` positions.

    Examples
    --------
    >>> import bioflow
    >>> ax = bioflow.pl.sequence_logo(["ACGT", "ACGA"], show=False)
    >>> len(ax.patches)  # L * K bars
    16
    """
    from bioflow.data.sequences import encode, resolve_alphabet

    if kind not in ("frequency", "information"):
        raise ValueError(f"kind must be 'frequency' or 'information', got {kind!r}")
    letters = resolve_alphabet(alphabet)
    K = len(letters)
    tok = encode(sequences, letters)
    freq = np.stack([np.bincount(col, minlength=K) for col in tok.T]) / tok.shape[0]  # (L, K)
    heights = freq
    if kind == "information":
        with np.errstate(divide="ignore", invalid="ignore"):
            h = -np.nansum(np.where(freq > 0, freq * np.log2(freq), 0.0), axis=1)
        heights = freq * (np.log2(K) - h)[:, None]
    ax = get_axes(ax, figsize=(max(4.0, 0.3 * tok.shape[1]), 3.0))
    pos = np.arange(1, tok.shape[1] + 1)
    cmap = __import__("matplotlib").colormaps["tab20"]
    bottom = np.zeros(tok.shape[1])
    for k, c in enumerate(letters):
        color = _COLORS.get(c, cmap(k % 20))
        ax.bar(pos, heights[:, k], bottom=bottom, color=color, label=c, width=0.9)
        bottom += heights[:, k]
    ax.set_xlabel("position")
    ax.set_ylabel("frequency" if kind == "frequency" else "bits")
    ax.set_xlim(0.4, tok.shape[1] + 0.6)
    if K <= 20:
        ax.legend(ncol=min(K, 10), fontsize="small", loc="upper right", frameon=False)
    if title:
        ax.set_title(title)
    return finish(ax, show, save)
