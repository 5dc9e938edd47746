"""The stages' optimizers, with a learning-rate multiplier per variable.

Keras 3 optimizers take one learning rate. Scaling gradients instead would
not do for Adam(W), whose update ignores the gradient's scale, so the
optimizers here multiply the rate itself inside `update_step` (and AdamW's
decoupled weight decay, which torch and BEiT scale with each group's rate).
One optimizer per stage keeps the checkpoint layout of a plain run.
"""

from __future__ import annotations

import keras

from unibed.trainer.config import TrainConfig
from unibed.trainer.schedule import stage_schedule

SGD_MOMENTUM = 0.9


class _PerVariableRates:
    """Mixin for a Keras optimizer: learning rate x multiplier[variable] (default 1)."""

    _multipliers: dict | None = None

    def set_rate_multipliers(self, pairs) -> None:
        """pairs: (variable, multiplier); call after build, before the first step."""
        self._multipliers = {self._var_key(v): float(m) for v, m in pairs}

    def rate_multiplier(self, variable) -> float:
        if not self._multipliers:
            return 1.0
        return self._multipliers.get(self._var_key(variable), 1.0)

    def update_step(self, gradient, variable, learning_rate):
        multiplier = self.rate_multiplier(variable)
        if multiplier != 1.0:
            learning_rate = learning_rate * multiplier
        return super().update_step(gradient, variable, learning_rate)

    def _apply_weight_decay(self, variables):
        if self.weight_decay is None or not self._multipliers:
            return super()._apply_weight_decay(variables)
        groups: dict[float, list] = {}
        for v in variables:
            groups.setdefault(self.rate_multiplier(v), []).append(v)
        # decay = lr x wd: scaling wd per group (a Python float at trace time) scales
        # the decay as the group's rate would, through the backend's own code path
        weight_decay = self.weight_decay
        try:
            for multiplier, group in groups.items():
                self.weight_decay = weight_decay * multiplier
                super()._apply_weight_decay(group)
        finally:
            self.weight_decay = weight_decay


class AdamW(_PerVariableRates, keras.optimizers.AdamW):
    pass


class Adam(_PerVariableRates, keras.optimizers.Adam):
    pass


class SGD(_PerVariableRates, keras.optimizers.SGD):
    pass


def make_optimizer(config: TrainConfig, peak_lr: float, steps: int, policy: str):
    """One stage's optimizer: warm-up + cosine to 0 over its steps (optimizer steps,
    whatever accumulate_steps is); loss scaling under fp16."""
    schedule = stage_schedule(peak_lr, steps, config.warmup_fraction)
    if config.optimizer == "adamw":
        opt = AdamW(schedule, weight_decay=config.weight_decay)
    elif config.optimizer == "sgd":
        opt = SGD(schedule, momentum=SGD_MOMENTUM, weight_decay=config.weight_decay or None)
    else:
        opt = Adam(schedule)
    if policy == "mixed_float16":  # fp16 needs loss scaling; bf16 has float32's range
        opt = keras.optimizers.LossScaleOptimizer(opt)
    return opt


def inner(opt):
    """The optimizer under a LossScaleOptimizer (or the optimizer itself)."""
    return getattr(opt, "inner_optimizer", opt)
