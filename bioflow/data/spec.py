"""``data_spec``: what a fitted model knows of the data it was trained on.

Each reader builds one of the dataclasses below (``CellTimeSeries.data_spec()``,
``PopulationSet.data_spec()``, ``SequenceDataModule``'s reader); every DataModule exposes
it as the plain dict ``dm.data_spec`` (``to_dict()``), which the CLI links into the
model's ``data_spec`` argument and which checkpoints store (plain values only, so they
load with ``torch.load(weights_only=True)``).  Models and tools read the dict; they never
import this module.

The dataclasses are also read-only mappings (``spec["dim"]``), so code written for the
dict works with either.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any


class DataSpec(Mapping):
    """Base of the data descriptions: a dataclass that reads like a dict."""

    def to_dict(self) -> dict:
        """Plain ``dict`` of plain values (deep copy), as stored in checkpoints."""
        return asdict(self)  # type: ignore[call-overload]

    def __getitem__(self, key: str) -> Any:
        if key not in self._names():
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())

    def _names(self) -> list[str]:
        return [f.name for f in fields(self)]  # type: ignore[arg-type]


@dataclass
class TimeCourseSpec(DataSpec):
    """A time course of cells (``CellFlowMatching``).

    Attributes
    ----------
    time
        The time column: ``{"key", "labels", "values", "kind"}`` (and ``"edges"`` for a
        binned time; ``TimeSpec.to_dict()``).
    use_rep
        ``adata.obsm`` key modelled, ``None`` for ``adata.X``.
    dim
        Number of features.
    var_names
        Feature names when ``use_rep`` is ``None``, else ``None``.
    kept
        Positions in ``time["labels"]`` of the times used in training.
    """

    time: dict
    use_rep: str | None
    dim: int
    var_names: list[str] | None
    kept: list[int]


@dataclass
class PopulationSpec(DataSpec):
    """Populations of initial and final cells (``MetaFlowMatching``).

    Attributes
    ----------
    population_key, source_key, source_value, condition_key, use_rep
        The keys the data was read with.
    dim
        Number of features.
    populations
        Training population labels, in index order.
    conditions
        Treatment labels, in index order (empty without ``condition_key``).
    var_names
        Feature names when ``use_rep`` is ``None`` (else empty).
    min_source_cells
        Fewest initial cells of any population (training or held out).
    encoder_key, encoder_categories
        The obs column given one-hot to the population encoder, and its categories in
        column order (``None`` / empty without one).
    """

    population_key: str
    source_key: str
    source_value: Any
    condition_key: str | None
    use_rep: str | None
    dim: int
    populations: list[str]
    conditions: list[str]
    var_names: list[str]
    min_source_cells: int
    encoder_key: str | None = None
    encoder_categories: list[str] = field(default_factory=list)


@dataclass
class SequenceSpec(DataSpec):
    """Equal-length letter sequences (``SequenceFlow``).

    Attributes
    ----------
    alphabet
        The letters.
    seq_len
        Sequence length.
    """

    alphabet: str
    seq_len: int
