"""Plots of sequence sets: sequence logos (letters scaled by information content)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from bioflow.pl._utils import finish, get_axes

_DNA_COLORS = {"A": "tab:green", "C": "tab:blue", "G": "tab:orange", "T": "tab:red"}


def _logo_matrix(
    sequences: Sequence[str], letters: str, kind: str
) -> tuple[np.ndarray, np.ndarray]:
    """Per-position letter frequencies ``(L, K)`` and letter heights ``(L, K)``."""
    from bioflow.data.sequences import encode

    tok = encode(sequences, letters)
    K = len(letters)
    freq = np.stack([np.bincount(col, minlength=K) for col in tok.T]) / tok.shape[0]
    if kind == "frequency":
        return freq, freq
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = -np.where(freq > 0, freq * np.log2(freq), 0.0).sum(1)
    return freq, freq * (np.log2(K) - entropy)[:, None]


def sequence_logo(
    sequences: Sequence[str],
    *,
    alphabet: str = "dna",
    kind: str = "information",
    ax=None,
    show: bool | None = None,
    save: str | os.PathLike | None = None,
    title: str | None = None,
):
    """A sequence logo: at each position the letters stacked, scaled by information content.

    Drawn with logomaker.  With ``kind="information"`` the stack at position ``l`` is
    ``IC_l = log2 K - H_l`` bits tall (``H_l`` the entropy of the position's letter
    frequencies, no small-sample correction) and each letter takes the share of its
    frequency, largest on top; conserved positions stand tall, uniform ones vanish.
    DNA letters use the classic colours (A green, C blue, G orange, T red), proteins
    logomaker's ``"chemistry"`` scheme.

    Parameters
    ----------
    sequences
        Equal-length strings (non-empty).
    alphabet
        ``"dna"``, ``"protein"`` or the letters.
    kind
        ``"information"`` (bits) or ``"frequency"`` (each stack sums to 1).
    ax, show, save
        Axes to draw on, whether to show, and a path to save the figure to.
    title
        Axes title.

    Returns
    -------
    matplotlib.axes.Axes
        The axes: positions ``1 ... L`` on integer ticks, bits (or frequency) upward,
        no legend (the letters are their own legend).

    Examples
    --------
    >>> import bioflow
    >>> ax = bioflow.pl.sequence_logo(["ACGT", "ACGA", "ACTA"], show=False)
    >>> float(ax.get_ylim()[1]), [int(t) for t in ax.get_xticks()]
    (2.0, [1, 2, 3, 4])
    """
    import logomaker
    import pandas as pd

    from bioflow.data.sequences import resolve_alphabet

    if kind not in ("frequency", "information"):
        raise ValueError(f"kind must be 'frequency' or 'information', got {kind!r}")
    if isinstance(sequences, str):
        raise ValueError(f"sequences must be a list of strings, not one string: {sequences[:20]!r}")
    if len(sequences) == 0:
        raise ValueError("sequences must be a non-empty list of strings")
    letters = resolve_alphabet(alphabet)
    _, heights = _logo_matrix(sequences, letters, kind)
    L, K = heights.shape
    df = pd.DataFrame(heights, columns=list(letters), index=np.arange(1, L + 1))
    if set(letters) == set("ACGT"):
        colors = _DNA_COLORS
    elif alphabet == "protein" or len(letters) == 20:
        colors = "chemistry"
    else:
        colors = "dimgray"
    ax = get_axes(ax, figsize=(max(4.0, 0.35 * L), 2.5))
    logomaker.Logo(df, ax=ax, color_scheme=colors, stack_order="big_on_top")
    step = int(np.ceil(L / 25))  # at most ~25 integer ticks: 1, 1 + step, ...
    ax.set_xticks(np.arange(1, L + 1, step))
    ax.set_xlim(0.5, L + 0.5)
    if kind == "information":
        ax.set_ylim(0, np.log2(K))
        ax.set_ylabel("bits")
    else:
        ax.set_ylim(0, 1)
        ax.set_ylabel("frequency")
    ax.set_xlabel("position")
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    if title:
        ax.set_title(title)
    return finish(ax, show, save)
