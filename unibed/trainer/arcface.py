"""ArcFace (additive angular margin) logits, as the reference notebook's
ArcMarginProduct: cosine between the normalised embedding and normalised
class weights; on the target class cos(theta + m), elsewhere cos(theta); all
times the scale s. With easy_margin False, targets whose angle is already past
pi - m (cos(theta) <= th = cos(pi - m)) get cos(theta) - mm instead (mm =
sin(pi - m) * m), which keeps the logit monotonic in theta there.

Computed in float32 whatever the mixed-precision policy: cos(theta + m)
near +-1 and the scale of 30 lose too much in bfloat16.
"""

from __future__ import annotations

import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="unibed")
class ArcMarginProduct(keras.layers.Layer):
    """Call on [embeddings [B, D], labels [B] int] -> logits [B, num_classes]."""

    def __init__(self, num_classes: int, scale: float = 30.0, margin: float = 0.3,
                 easy_margin: bool = False, **kwargs):
        kwargs["dtype"] = "float32"
        super().__init__(**kwargs)
        self.num_classes = int(num_classes)
        self.scale = float(scale)
        self.margin = float(margin)
        self.easy_margin = bool(easy_margin)
        self.cos_m = math.cos(margin)
        self.sin_m = math.sin(margin)
        self.th = math.cos(math.pi - margin)
        self.mm = math.sin(math.pi - margin) * margin

    def build(self, input_shape):
        dim = input_shape[0][-1]
        self.kernel = self.add_weight(
            name="kernel", shape=(dim, self.num_classes), initializer="glorot_uniform",
            trainable=True)

    def cosine(self, embeddings):
        x = ops.normalize(ops.cast(embeddings, "float32"), axis=1)
        w = ops.normalize(self.kernel, axis=0)
        return ops.matmul(x, w)

    def call(self, inputs):
        embeddings, labels = inputs
        cosine = self.cosine(embeddings)
        # the clip keeps sqrt's gradient finite at |cos| = 1
        sine = ops.sqrt(ops.clip(1.0 - ops.square(cosine), 1e-7, 1.0))
        phi = cosine * self.cos_m - sine * self.sin_m  # cos(theta + m)
        if self.easy_margin:
            phi = ops.where(cosine > 0.0, phi, cosine)
        else:
            phi = ops.where(cosine > self.th, phi, cosine - self.mm)
        one_hot = ops.one_hot(ops.cast(ops.reshape(labels, (-1,)), "int32"), self.num_classes,
                              dtype="float32")
        return self.scale * (one_hot * phi + (1.0 - one_hot) * cosine)

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], self.num_classes)

    def get_config(self):
        config = super().get_config()
        config.pop("dtype", None)  # always float32, set in __init__
        config.update(num_classes=self.num_classes, scale=self.scale, margin=self.margin,
                      easy_margin=self.easy_margin)
        return config
