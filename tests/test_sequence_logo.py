"""pl.sequence_logo: letters scaled by information content, integer ticks, no legend."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import bioflow  # noqa: E402
from bioflow.pl.sequence import _logo_matrix  # noqa: E402


def test_heights_are_frequency_times_information():
    seqs = ["AAAA", "AACC", "ACGT", "AGTG"]
    freq, h = _logo_matrix(seqs, "ACGT", "information")
    # position 1: all A -> 2 bits of A; position 2: A 1/2, C 1/4, G 1/4 -> IC 0.5 bit
    assert np.allclose(h[0], [2, 0, 0, 0])
    assert np.allclose(h[1].sum(), 2 - 1.5) and np.allclose(h[1] / h[1].sum(), freq[1])
    _, f = _logo_matrix(seqs, "ACGT", "frequency")
    assert np.allclose(f.sum(1), 1)


def test_logo_draws_letters_with_integer_ticks_and_no_legend(tmp_path):
    seqs = ["ACGTTATAAT", "ACGATATAAT", "TCGATATAAT"]
    fig, ax = plt.subplots()
    out = bioflow.pl.sequence_logo(seqs, ax=ax, show=False, save=tmp_path / "logo.png")
    assert out is ax and ax.get_legend() is None
    assert list(ax.get_xticks()) == list(range(1, 11))
    assert ax.get_ylim() == (0, 2) and ax.get_ylabel() == "bits"
    # conserved positions draw one glyph as tall as the axis: heights are bits
    tall = [p for p in ax.patches if p.get_window_extent().height > 0.9 * ax.bbox.height]
    assert len(tall) >= 6
    assert (tmp_path / "logo.png").stat().st_size > 0
    many = ["".join(np.random.default_rng(i).choice(list("ACGT"), 60)) for i in range(5)]
    ax2 = bioflow.pl.sequence_logo(many, show=False)
    ticks = ax2.get_xticks()
    assert ticks[0] == 1 and np.all(np.diff(ticks) == 3) and ticks.dtype.kind == "i"
    plt.close("all")


def test_logo_bad_input():
    with pytest.raises(ValueError, match="kind"):
        bioflow.pl.sequence_logo(["ACGT"], kind="bits", show=False)
    with pytest.raises(ValueError, match="non-empty"):
        bioflow.pl.sequence_logo([], show=False)
    with pytest.raises(ValueError):
        bioflow.pl.sequence_logo(["ACGZ"], show=False)
