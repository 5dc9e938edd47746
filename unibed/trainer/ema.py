"""An exponential moving average of the exported model's weights.

After every optimizer step (both stages): average = d * average + (1 - d) * w,
the average starting at the initial weights. It covers the embedding
model's float weights (tower and head: what is exported; the class weights
are not), lives in the checkpoint under `ema`, so a resumed run continues
the same average, and replaces the weights just before export when
`ema_decay` > 0. Updated in cross-replica context: one average per variable,
whatever the number of replicas.
"""

from __future__ import annotations

import keras
import tensorflow as tf


class WeightEMA:
    def __init__(self, variables, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"ema_decay must be in (0, 1), got {decay}")
        self.decay = float(decay)
        self.targets = [v for v in variables if keras.backend.is_float_dtype(v.dtype)]
        # a tf.Module holding only the averages: what the checkpoint tracks as `ema`
        self.state = tf.Module(name="ema")
        self.state.averages = [
            tf.Variable(tf.convert_to_tensor(v), trainable=False, name=f"ema_{i}")
            for i, v in enumerate(self.targets)]

    @property
    def averages(self) -> list[tf.Variable]:
        return list(self.state.averages)

    def update(self) -> None:
        d = self.decay
        for average, v in zip(self.state.averages, self.targets):
            average.assign(d * average + (1.0 - d) * tf.cast(tf.convert_to_tensor(v), average.dtype))

    def copy_to_model(self) -> None:
        """Overwrite the model's weights with their averages (before export)."""
        for average, v in zip(self.state.averages, self.targets):
            v.assign(tf.convert_to_tensor(average))


def restore_final_weights(models, ema_decay: float, checkpoint: str) -> None:
    """Restore a run's checkpoint into `models`; with ema_decay > 0 the exported
    weights become the checkpoint's averages, as the run's own export did."""
    tf.train.Checkpoint(model=models.training).restore(checkpoint).expect_partial()
    if ema_decay > 0:
        ema = WeightEMA(models.embedding.weights, ema_decay)
        status = tf.train.Checkpoint(ema=ema.state).restore(checkpoint)
        status.assert_existing_objects_matched().expect_partial()  # no silent initial weights
        ema.copy_to_model()
