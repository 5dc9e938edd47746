"""Backbone feature -> the embedding: [BatchNorm] -> Dropout -> Dense, or branches.

    head_branches = 1:  [BN] -> Dropout -> Dense(embedding_dim)       (REFERENCE section 4)
    head_branches = N:  [BN] -> N x (Dropout -> Dense(embedding_dim)) -> mean

BatchNorm before the projection is the GUIE 5th place's head (BN + Linear -> 64)
and the 6th's (BN + Dropout + Linear). The parallel branches follow the 3rd
place (arXiv 2210.09296: 20 parallel Dense and Dropout layers); averaging them
keeps the embedding embedding_dim wide and, with one Dense per branch, is
multi-sample dropout (the 4th place) with its own weights per sample. With one
branch the layer names are those of the original head ("head_dropout",
"embedding"), so its checkpoints and exports are unchanged.
"""

from __future__ import annotations

import keras

from unibed.trainer.config import TrainConfig

EMBEDDING_LAYER = "embedding"


def embedding_head(features, config: TrainConfig):
    """Apply the head's layers to `features` [B, F]; the embedding [B, embedding_dim]."""
    x = features
    if config.head_batchnorm:
        x = keras.layers.BatchNormalization(name="head_batchnorm")(x)
    if config.head_branches == 1:
        x = keras.layers.Dropout(config.dropout, name="head_dropout")(x)
        return keras.layers.Dense(config.embedding_dim, name=EMBEDDING_LAYER)(x)
    branches = [
        keras.layers.Dense(config.embedding_dim, name=f"embedding_branch_{i}")(
            keras.layers.Dropout(config.dropout, name=f"head_dropout_{i}")(x))
        for i in range(config.head_branches)
    ]
    return keras.layers.Average(name=EMBEDDING_LAYER)(branches)
