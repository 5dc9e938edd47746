"""The trained model and the embedding model that is exported.

    images [0,255] -> CLIP normalise -> CLIP vision tower -> CLS token
      -> [BatchNorm] -> Dropout -> Dense(embedding_dim) (or N such branches, averaged)
         = embedding (heads/embedding_head.py)
      training:  MarginProduct([embedding, label]) -> logits (softmax + CE in the loss):
                 ArcFace or CosFace, optionally sub-centre (heads/margin_product.py)
      embedding: [reduce to 64] -> L2 normalise

Both models share layers, so training the first trains the second. An
embedding wider than 64 (the original notebook trained 256) is reduced inside
the embedding model by averaging groups of embedding_dim/64 adjacent
dimensions of the normalised vector, then renormalising. That reduction is
fixed and parameter-free: it needs no extra training or index statistics (as
PCA would), is identical at every export, and the head can be trained at any
multiple of 64. With embedding_dim <= 64 the embedding is used as it is.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
from keras import ops

from unibed.trainer.backbone import build_encoder, feature_model
from unibed.trainer.config import SUBMISSION_DIM, TrainConfig
from unibed.trainer.heads.embedding_head import embedding_head
from unibed.trainer.heads.margin_product import MarginProduct
from unibed.trainer.heads.margin_schedule import HEAD_LAYER


@keras.saving.register_keras_serializable(package="unibed")
class GroupMean(keras.layers.Layer):
    """[B, D] -> [B, out_dim]: the mean of each run of D/out_dim adjacent values."""

    def __init__(self, out_dim: int, **kwargs):
        super().__init__(**kwargs)
        self.out_dim = int(out_dim)

    def call(self, x):
        d = x.shape[-1]
        return ops.mean(ops.reshape(x, (-1, self.out_dim, d // self.out_dim)), axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.out_dim)

    def get_config(self):
        return {**super().get_config(), "out_dim": self.out_dim}


@dataclass
class Models:
    training: keras.Model  # [images, labels] -> margin logits [B, num_classes]
    embedding: keras.Model  # images -> L2-normalised embedding [B, min(embedding_dim, 64)]
    encoder: keras.Model  # the CLIP vision tower (frozen in stage 1)


def build_models(config: TrainConfig, num_classes: int, *, random_weights: bool = False,
                 encoder: keras.Model | None = None) -> Models:
    """Build under the active distribution strategy scope and dtype policy."""
    if num_classes < 2:
        raise ValueError(f"need at least 2 classes, got {num_classes}")
    if encoder is None:
        encoder = build_encoder(config, random_weights=random_weights)
    features = feature_model(encoder, config.image_size)
    images = keras.Input((config.image_size, config.image_size, 3), dtype="float32",
                         name="images")
    labels = keras.Input((), dtype="int32", name="labels")
    embedding = embedding_head(features(images), config)
    logits = MarginProduct(num_classes, config.arcface_scale, config.arcface_margin,
                           margin_type=config.margin_type, subcenters=config.subcenters,
                           name=HEAD_LAYER)([embedding, labels])
    training = keras.Model([images, labels], logits, name="clip_arcface")

    out = keras.layers.UnitNormalization(axis=-1, dtype="float32", name="l2_normalize")(embedding)
    if config.embedding_dim > SUBMISSION_DIM:
        out = GroupMean(SUBMISSION_DIM, dtype="float32", name=f"reduce_to_{SUBMISSION_DIM}")(out)
        out = keras.layers.UnitNormalization(axis=-1, dtype="float32", name="l2_renormalize")(out)
    embedding_model = keras.Model(images, out, name="clip_embedding")
    return Models(training=training, embedding=embedding_model, encoder=encoder)
