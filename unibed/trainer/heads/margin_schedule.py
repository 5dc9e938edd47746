"""The margin each class trains with at each step: base margin plus a schedule.

    margin_c(epoch) = min(base_c + step * epoch, cap)   (step > 0)
    margin_c        = base_c                            (step = 0)

base_c is arcface_margin for every class, or the class's dynamic margin
(dynamic_margin.py). The schedule is the GUIE 2nd place's: 0.3 rising by 0.1
per epoch up to 0.8. Epochs count whole passes over the train split across
both stages (global step * global batch // train records), so a resumed run
lands on the same margin. `before_chunk` assigns the margins to the head's
non-trainable `margins` variable on the host before each run of steps, and
shortens that run so an epoch boundary never falls inside it: the compiled
step reads the variable, nothing is retraced.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from unibed.trainer.config import ConfigError, TrainConfig
from unibed.trainer.heads.dynamic_margin import counts_per_class, dynamic_margins

HEAD_LAYER = "arc_margin"  # the MarginProduct's name in the training model


@dataclass(frozen=True, eq=False)  # holds an array: compared by identity
class MarginPlan:
    base: np.ndarray  # float32 [C]
    step: float  # added per epoch; 0: fixed margins
    cap: float
    num_train_records: int | None
    global_batch_size: int

    def margins_at(self, epoch: int) -> np.ndarray:
        if self.step <= 0:
            return self.base
        return np.minimum(self.base + np.float32(self.step * epoch), np.float32(self.cap))

    def epoch_at(self, global_step: int) -> int:
        if self.step <= 0:
            return 0
        return global_step * self.global_batch_size // self.num_train_records

    def steps_to_next_epoch(self, global_step: int) -> int | None:
        """Steps from global_step to the next change of margin; None: no more changes."""
        if self.step <= 0:
            return None
        epoch = self.epoch_at(global_step)
        if np.all(self.margins_at(epoch) == self.margins_at(epoch + 1)):
            return None
        start = -(-(epoch + 1) * self.num_train_records // self.global_batch_size)  # ceil
        return start - global_step

    def before_chunk(self, training_model, global_step: int, n: int) -> int:
        """Assign the margins of global_step's epoch; the chunk's steps, cut at the epoch's end."""
        head = training_model.get_layer(HEAD_LAYER)
        head.margins.assign(self.margins_at(self.epoch_at(global_step)))
        left = self.steps_to_next_epoch(global_step)
        return n if left is None else min(n, left)


def margin_plan(config: TrainConfig, num_classes: int, class_counts=None,
                num_train_records: int | None = None) -> MarginPlan:
    """The run's plan; class_counts: the manifest's train records per class ({id: n} or [C])."""
    if config.dynamic_margin:
        if class_counts is None:
            raise ConfigError("dynamic_margin=True needs the train split's per-class counts "
                              "(the manifest's records_per_class)")
        counts = (counts_per_class(class_counts, num_classes) if hasattr(class_counts, "items")
                  else np.asarray(class_counts))
        base = dynamic_margins(counts, *config.dynamic_margin_range)
    else:
        base = np.full(num_classes, config.arcface_margin, np.float32)
    if config.margin_schedule_step > 0 and not num_train_records:
        raise ConfigError("margin_schedule_step > 0 counts epochs: the train split's size is unknown")
    return MarginPlan(base, config.margin_schedule_step, config.margin_schedule_max,
                      num_train_records, config.global_batch_size)
