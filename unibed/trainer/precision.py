"""Which mixed-precision policy a run uses, from the flag and the devices.

    auto: bf16 on TPU; on GPUs bf16 when every one has compute capability 8.0
          or more (Ampere and later run bf16 matmuls natively), fp16 with loss
          scaling below that; float32 on CPU (bf16 there is mostly emulated).

An explicit flag is honoured, except bf16 on a GPU older than 8.0 (no bf16
tensor cores: slower than float32) and fp16 on a TPU (no fp16 units): both
are refused with the reason. `choose_precision` is pure, so the choice can be
tested on device descriptions; `describe_devices` reads them from TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass

POLICIES = {"float32": "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}
BF16_MIN_CAPABILITY = (8, 0)


@dataclass(frozen=True)
class Devices:
    kind: str  # "tpu", "gpu" or "cpu"
    gpu_capabilities: tuple[tuple[int, int], ...] = ()  # (major, minor) per GPU


def choose_precision(flag: str, devices: Devices) -> str:
    """The precision flag ("float32", "bf16" or "fp16") a run uses on these devices."""
    if flag not in ("auto", *POLICIES):
        raise ValueError(f"unknown mixed_precision {flag!r}; one of auto, {', '.join(POLICIES)}")
    oldest = min(devices.gpu_capabilities, default=None)
    bf16_ok = devices.kind != "gpu" or (oldest is not None and oldest >= BF16_MIN_CAPABILITY)
    if flag == "auto":
        if devices.kind == "gpu":
            return "bf16" if bf16_ok else "fp16"
        return "bf16" if devices.kind == "tpu" else "float32"
    if flag == "bf16" and not bf16_ok:
        raise ValueError(f"mixed_precision=bf16 needs GPUs of compute capability "
                         f"{BF16_MIN_CAPABILITY[0]}.{BF16_MIN_CAPABILITY[1]} or more, found "
                         f"{'.'.join(map(str, oldest)) if oldest else 'unknown'}; use fp16 or auto")
    if flag == "fp16" and devices.kind == "tpu":
        raise ValueError("mixed_precision=fp16 on a TPU: TPUs compute in bf16; use bf16 or auto")
    return flag


def policy_name(flag: str) -> str:
    """The Keras dtype policy of a precision flag."""
    return POLICIES[flag]


def describe_devices(kind: str) -> Devices:
    """The devices TensorFlow sees; `kind` from strategy.strategy_kind."""
    if kind != "gpu":
        return Devices(kind)
    import tensorflow as tf

    capabilities = []
    for gpu in tf.config.list_physical_devices("GPU"):
        cc = tf.config.experimental.get_device_details(gpu).get("compute_capability")
        capabilities.append(tuple(cc) if cc else (0, 0))  # unknown: treated as old
    return Devices("gpu", tuple(capabilities))
