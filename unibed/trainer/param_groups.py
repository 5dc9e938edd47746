"""Which weights learn in which stage, and at which rate relative to the stage's.

Stage 1 (head) trains everything but the CLIP tower; stage 2 (finetune)
trains everything, or everything but the class weights when
`freeze_classifier` is set (1st place: the classifier learnt in stage 1 is
kept as a fixed target while the backbone adapts). The class weights are the
layers of the training model that the embedding model does not use, so this
holds whatever the head is.

Layer-wise rate decay (BEiT; the 4th place's per-block rates): with L
transformer blocks, block i (0-based) learns at finetune_lr * layer_decay^(L-i),
the patch/position embeddings and the pre-norm at layer_decay^(L+1), the
final norm (and any other weight of the tower) at finetune_lr; everything
outside the tower (the head) at finetune_head_lr (or finetune_lr when 0).
"""

from __future__ import annotations

import keras

from unibed.trainer.config import TrainConfig


def classifier_layers(models) -> list[keras.layers.Layer]:
    """The training model's layers with weights that the embedding model lacks."""
    exported = {id(layer) for layer in models.embedding.layers}
    return [layer for layer in models.training.layers
            if id(layer) not in exported and layer.weights]


def set_stage_trainable(models, stage_index: int, freeze_classifier: bool) -> None:
    """Set the trainable flags of stage 0 (head) or 1 (finetune)."""
    models.encoder.trainable = stage_index == 1
    for layer in classifier_layers(models):
        layer.trainable = not (stage_index == 1 and freeze_classifier)


def _tower_groups(encoder) -> list[tuple[list, int]]:
    """(weights, decay exponent) per part of a keras-hub CLIP vision tower."""
    blocks = list(getattr(encoder, "encoder_layers", []))
    depth = len(blocks)
    bottom = [getattr(encoder, name, None) for name in ("embedding", "pre_layer_norm")]
    groups = [(layer.weights, depth + 1) for layer in bottom if layer is not None]
    groups += [(block.weights, depth - i) for i, block in enumerate(blocks)]
    return groups


def stage2_rate_multipliers(models, config: TrainConfig) -> list[tuple[keras.Variable, float]]:
    """(variable, multiplier of finetune_lr) for every variable of the training model."""
    head = (config.finetune_head_lr or config.finetune_lr) / config.finetune_lr
    multipliers = {id(v): head for v in models.training.weights}
    for v in models.encoder.weights:
        multipliers[id(v)] = 1.0
    for weights, exponent in _tower_groups(models.encoder):
        for v in weights:
            multipliers[id(v)] = config.layer_decay ** exponent
    return [(v, multipliers[id(v)]) for v in models.training.weights]


def uses_rate_multipliers(config: TrainConfig) -> bool:
    return config.layer_decay != 1.0 or (
        config.finetune_head_lr > 0 and config.finetune_head_lr != config.finetune_lr)
