"""Data layer: the only place that reads AnnData and FASTA."""

from bioflow._lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    [],
    {
        **dict.fromkeys(
            [
                "CellTimeSeries",
                "TimeSpec",
                "read_representation",
                "read_time_series",
                "resolve_time",
            ],
            ".anndata",
        ),
        **dict.fromkeys(["CellDynamicsDataModule", "CellPairDataset"], ".cells"),
        **dict.fromkeys(
            ["ALPHABETS", "SequenceDataModule", "decode", "encode", "one_hot", "resolve_alphabet"],
            ".sequences",
        ),
        **dict.fromkeys(
            ["PopulationDataModule", "PopulationSet", "read_populations"], ".populations"
        ),
        **dict.fromkeys(["H5Rows", "H5adView"], ".backed"),
    },
)
