"""Plain ``torch.nn`` building blocks shared by the model families."""

from bioflow.nn.embeddings import FourierFeatures, SinusoidalTimeEmbedding
from bioflow.nn.fields import MLPVectorField, ResidualMLPVectorField, make_activation

__all__ = [
    "FourierFeatures",
    "MLPVectorField",
    "ResidualMLPVectorField",
    "SinusoidalTimeEmbedding",
    "make_activation",
]
from bioflow.nn.sequence import (  # noqa: E402
    DilatedConvNet,
    SequenceClassifier,
    SequenceTransformer,
)

__all__ += ["DilatedConvNet", "SequenceClassifier", "SequenceTransformer"]

from bioflow.nn.population import (  # noqa: E402
    KNNGraph,
    KNNGraphConv,
    PopulationEncoder,
    knn_edges,
    knn_indices,
)

__all__ += [
    "KNNGraph",
    "KNNGraphConv",
    "PopulationEncoder",
    "knn_edges",
    "knn_indices",
]
