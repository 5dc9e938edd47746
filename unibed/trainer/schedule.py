"""Learning rate per stage: linear warm-up from 0, then cosine decay to 0.

Each stage has its own optimizer, so `step` counts from 0 inside the stage
and a resumed stage picks up the schedule where its optimizer left off.
"""

from __future__ import annotations

import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="unibed")
class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
    def __init__(self, peak_lr: float, total_steps: int, warmup_steps: int, final_lr: float = 0.0):
        self.peak_lr = float(peak_lr)
        self.total_steps = max(1, int(total_steps))
        self.warmup_steps = max(0, min(int(warmup_steps), self.total_steps - 1))
        self.final_lr = float(final_lr)

    def __call__(self, step):
        # step t (0-based) is the t+1-th update: warm-up reaches the peak at its last step
        s = ops.cast(step, "float32") + 1.0
        warm = self.peak_lr * s / float(max(1, self.warmup_steps))
        decay_len = float(max(1, self.total_steps - self.warmup_steps))
        progress = ops.clip((s - self.warmup_steps) / decay_len, 0.0, 1.0)
        cosine = self.final_lr + 0.5 * (self.peak_lr - self.final_lr) * (
            1.0 + ops.cos(math.pi * progress))
        return ops.where(s <= self.warmup_steps, warm, cosine)

    def get_config(self):
        return {"peak_lr": self.peak_lr, "total_steps": self.total_steps,
                "warmup_steps": self.warmup_steps, "final_lr": self.final_lr}


def stage_schedule(peak_lr: float, steps: int, warmup_fraction: float) -> WarmupCosine:
    return WarmupCosine(peak_lr, steps, round(warmup_fraction * steps))
