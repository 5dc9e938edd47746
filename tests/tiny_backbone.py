"""The smallest CLIP backbone the trainer tests build: 32-px images, one layer of
width 32 (seconds per test on CPU). One definition, so the tests agree on it."""

from __future__ import annotations

from unibed.trainer.config import TrainConfig, get_config

SMALLEST = {"image_size": 32, "tiny_patch_size": 8, "tiny_hidden_dim": 32, "tiny_num_layers": 1,
            "tiny_num_heads": 2, "tiny_intermediate_dim": 64}


def tiny_config(**overrides) -> TrainConfig:
    """The `tiny` config on the smallest backbone, with `overrides` on top."""
    return get_config("tiny").with_overrides(**{**SMALLEST, **overrides})
