"""Margin-softmax logits: ArcFace, CosFace, each with optional sub-centres.

    cos_c     = cosine(normalised embedding, normalised class weight c)
                (sub-centre: the max over the class's K centre cosines)
    target y: ArcFace  cos(theta_y + m_y)   (the reference notebook's ArcMarginProduct)
              CosFace  cos_y - m_y          (the 1st place's AddMarginProduct)
    others:   cos_c unchanged;  all times the scale s.

ArcFace with easy_margin False: a target whose angle is already past pi - m
(cos <= cos(pi - m)) gets cos - sin(pi - m) * m instead, which keeps the logit
monotonic in theta there. Sub-centre (Deng et al. 2020; the GUIE 2nd, 4th, 6th
and 10th places): K centres per class, so a class with several looks need not
pull them to one point. The kernel is class-major: column c*K + k is class c's
centre k, as in the published sub-centre code's view(-1, C, K).

The margin is per class and read from a non-trainable variable, `margins`
[num_classes]: a dynamic margin per class (dynamic_margin.py) and a margin
schedule over epochs (margin_schedule.py) are host-side assignments to it, so
neither retraces the compiled step. Computed in float32 whatever the
mixed-precision policy: cos(theta + m) near +-1 and the scale of 30 lose too
much in bfloat16.
"""

from __future__ import annotations

import math

import keras
from keras import ops

from unibed.trainer.config import MARGIN_TYPES


@keras.saving.register_keras_serializable(package="unibed")
class MarginProduct(keras.layers.Layer):
    """Call on [embeddings [B, D], labels [B] int] -> logits [B, num_classes]."""

    def __init__(self, num_classes: int, scale: float = 30.0, margin: float = 0.3,
                 margin_type: str = "arcface", subcenters: int = 1, easy_margin: bool = False,
                 **kwargs):
        if margin_type not in MARGIN_TYPES:
            raise ValueError(f"margin_type={margin_type!r}: one of {MARGIN_TYPES}")
        if subcenters < 1:
            raise ValueError(f"subcenters={subcenters}: must be >= 1")
        kwargs["dtype"] = "float32"
        super().__init__(**kwargs)
        self.num_classes = int(num_classes)
        self.scale = float(scale)
        self.margin = float(margin)  # every class's margin until assigned otherwise
        self.margin_type = margin_type
        self.subcenters = int(subcenters)
        self.easy_margin = bool(easy_margin)

    def build(self, input_shape):
        dim = input_shape[0][-1]
        self.kernel = self.add_weight(
            name="kernel", shape=(dim, self.num_classes * self.subcenters),
            initializer="glorot_uniform", trainable=True)
        self.margins = self.add_weight(
            name="margins", shape=(self.num_classes,),
            initializer=keras.initializers.Constant(self.margin), trainable=False)

    def cosine(self, embeddings):
        """[B, num_classes]: each class's cosine (the best of its sub-centres)."""
        x = ops.normalize(ops.cast(embeddings, "float32"), axis=1)
        w = ops.normalize(self.kernel, axis=0)
        cos = ops.matmul(x, w)
        if self.subcenters > 1:
            cos = ops.max(ops.reshape(cos, (-1, self.num_classes, self.subcenters)), axis=-1)
        return cos

    def target_logit(self, cos_t, m):
        """The margin-penalised cosine of the target class ([B, 1] each)."""
        if self.margin_type == "cosface":
            return cos_t - m
        # the clip keeps sqrt's gradient finite at |cos| = 1
        sin_t = ops.sqrt(ops.clip(1.0 - ops.square(cos_t), 1e-7, 1.0))
        phi = cos_t * ops.cos(m) - sin_t * ops.sin(m)  # cos(theta + m)
        if self.easy_margin:
            return ops.where(cos_t > 0.0, phi, cos_t)
        return ops.where(cos_t > ops.cos(math.pi - m), phi, cos_t - ops.sin(math.pi - m) * m)

    def call(self, inputs):
        embeddings, labels = inputs
        labels = ops.cast(ops.reshape(labels, (-1,)), "int32")
        cos = self.cosine(embeddings)
        cos_t = ops.take_along_axis(cos, labels[:, None], axis=1)
        m = ops.take(self.margins, labels)[:, None]
        one_hot = ops.one_hot(labels, self.num_classes, dtype="float32")
        return self.scale * ops.where(one_hot > 0.0, self.target_logit(cos_t, m), cos)

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], self.num_classes)

    def get_config(self):
        config = super().get_config()
        config.pop("dtype", None)  # always float32, set in __init__
        config.update(num_classes=self.num_classes, scale=self.scale, margin=self.margin,
                      margin_type=self.margin_type, subcenters=self.subcenters,
                      easy_margin=self.easy_margin)
        return config
