"""Plain ``torch.nn`` building blocks shared by the model families."""

from bioflow._lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    [],
    {
        **dict.fromkeys(["FourierFeatures", "SinusoidalTimeEmbedding"], ".embeddings"),
        **dict.fromkeys(["MLPVectorField", "ResidualMLPVectorField", "make_activation"], ".fields"),
        **dict.fromkeys(
            ["DilatedConvNet", "SequenceClassifier", "SequenceTransformer"], ".sequence"
        ),
        **dict.fromkeys(
            ["KNNGraph", "KNNGraphConv", "PopulationEncoder", "knn_edges", "knn_indices"],
            ".population",
        ),
    },
)
