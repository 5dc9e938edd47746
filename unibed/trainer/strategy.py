"""Distribution strategy and mixed-precision policy, chosen by flag.

auto: a TPU if the resolver finds one, MirroredStrategy over the GPUs when
there are more than one, else TensorFlow's default strategy (one device).
The precision policy is chosen in unibed/trainer/precision.py (auto: bf16 on
TPU and on GPUs of compute capability 8.0+, fp16 with loss scaling on older
GPUs, float32 on CPU).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from unibed.trainer.precision import choose_precision, describe_devices, policy_name


def _tpu_resolver(tpu: str):
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or None)
        if not resolver.master() and not tpu:
            return None
        return resolver
    except (ValueError, RuntimeError, tf.errors.NotFoundError):
        return None


def make_strategy(name: str = "auto", tpu: str = "") -> tf.distribute.Strategy:
    """Must run before any model variable is created (TPU init resets devices)."""
    if name in ("tpu", "auto"):
        resolver = _tpu_resolver(tpu)
        if resolver is not None:
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
            return tf.distribute.TPUStrategy(resolver)
        if name == "tpu":
            raise RuntimeError(f"strategy=tpu but no TPU was found (tpu={tpu!r})")
    if name == "mirrored":
        # over the GPUs, or over the (logical) CPUs when there is no GPU
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    if name == "auto" and len(tf.config.list_logical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    if name not in ("auto", "cpu"):
        raise ValueError(f"unknown strategy {name!r}")
    return tf.distribute.get_strategy()


def strategy_kind(strategy: tf.distribute.Strategy) -> str:
    if isinstance(strategy, tf.distribute.TPUStrategy):
        return "tpu"
    if tf.config.list_logical_devices("GPU"):
        return "gpu"
    return "cpu"


def choose_policy(flag: str, strategy: tf.distribute.Strategy) -> str:
    """A Keras dtype policy name for the flag and the hardware."""
    return policy_name(choose_precision(flag, describe_devices(strategy_kind(strategy))))


def set_policy(policy: str) -> None:
    keras.mixed_precision.set_global_policy(policy)


def check_batch(global_batch_size: int, strategy: tf.distribute.Strategy) -> int:
    """The per-replica batch; the global batch must split evenly over replicas."""
    n = strategy.num_replicas_in_sync
    if global_batch_size % n:
        raise ValueError(
            f"global_batch_size={global_batch_size} is not divisible by the {n} replicas "
            f"of the {type(strategy).__name__}; use a multiple of {n}")
    return global_batch_size // n
