"""Data layer: the only place that reads AnnData and FASTA."""

from bioflow.data.anndata import (
    CellTimeSeries,
    TimeSpec,
    read_representation,
    read_time_series,
    resolve_time,
)
from bioflow.data.cells import CellDynamicsDataModule, CellPairDataset

__all__ = [
    "CellDynamicsDataModule",
    "CellPairDataset",
    "CellTimeSeries",
    "TimeSpec",
    "read_representation",
    "read_time_series",
    "resolve_time",
]
from bioflow.data.sequences import (  # noqa: E402
    ALPHABETS,
    SequenceDataModule,
    decode,
    encode,
    one_hot,
    resolve_alphabet,
)

__all__ += ["ALPHABETS", "SequenceDataModule", "decode", "encode", "one_hot", "resolve_alphabet"]

from bioflow.data.populations import (  # noqa: E402
    PopulationDataModule,
    PopulationSet,
    read_populations,
)

__all__ += ["PopulationDataModule", "PopulationSet", "read_populations"]
