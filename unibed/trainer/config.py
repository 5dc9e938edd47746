"""Every knob of a training run in one frozen dataclass (big_vision style).

A run is fully described by its TrainConfig: the trainer stores it as JSON in
the work folder and refuses to resume a folder written by another config.
Named presets (`tiny`, `vit_h14` for real runs, `vit_l14`, `vit_l14_336`,
`vit_g14`) are starting points; `key=value` overrides are parsed against the
field's type so a typo fails loudly.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field

from unibed.trainer.augment_config import AugmentConfig
from unibed.trainer.guie_presets import GUIE_PRESETS

BACKBONE_PRESETS = ("clip_vit_h_14_laion2b_s32b_b79k", "clip_vit_large_patch14",
                    "clip_vit_large_patch14_336", "clip_vit_g_14_laion2b_s12b_b42k")
POOLED_FEATURES = ("cls", "projected")
MIXED_PRECISION = ("auto", "float32", "bf16", "fp16")
STRATEGIES = ("auto", "cpu", "mirrored", "tpu")
OPTIMIZERS = ("adamw", "adam", "sgd")  # sgd: momentum 0.9 (1st place's head stage)
MARGIN_TYPES = ("arcface", "cosface")
SUBMISSION_DIM = 64  # the competition scores embeddings of at most 64 dimensions


class ConfigError(ValueError):
    """A config value or override that cannot be used; the message names the key."""


@dataclass(frozen=True)
class TrainConfig:
    # --- backbone ---
    backbone: str = "tiny"  # "tiny" (random, from tiny_* below) or a keras-hub CLIP preset name
    # a keras-hub preset or a Hugging Face CLIP folder, local or gs://; empty: the preset by name
    backbone_path: str = ""
    # the class token after the post-layer-norm (hidden wide: 1280 for ViT-H/14, the GUIE 2nd
    # place) or after CLIP's visual projection (projection wide: 1024 for ViT-H/14, the 1st)
    pooled_feature: str = "cls"
    tiny_patch_size: int = 8
    tiny_hidden_dim: int = 64
    tiny_num_layers: int = 2
    tiny_num_heads: int = 4
    tiny_intermediate_dim: int = 128
    tiny_projection_dim: int = 48  # the visual projection's width (pooled_feature=projected)
    image_size: int = 64  # another size than the checkpoint's interpolates its position embeddings
    # --- head (REFERENCE section 4) ---
    embedding_dim: int = 64
    dropout: float = 0.2
    arcface_scale: float = 30.0  # s, for either margin type
    arcface_margin: float = 0.3  # m for every class (and the schedule's start)
    margin_type: str = "arcface"  # or "cosface": s*(cos - m) on the target (1st place)
    subcenters: int = 1  # K > 1: sub-centre margin head, max over K centres (2nd: 2, 6th: 3)
    dynamic_margin: bool = False  # m_c = a*n_c^(-1/4) + b from the manifest's counts (4th, 6th)
    dynamic_margin_range: tuple = (0.05, 0.5)  # (largest class's m, smallest class's m)
    margin_schedule_step: float = 0.0  # added to every margin per epoch (2nd place: 0.1)
    margin_schedule_max: float = 0.8  # the schedule's cap (2nd place: 0.8)
    head_batchnorm: bool = False  # BatchNorm on the backbone feature (5th, 6th places)
    head_branches: int = 1  # N parallel Dropout -> Dense branches, averaged (3rd place: 20)
    # --- schedule: stage 1 trains the head on a frozen backbone, stage 2 everything ---
    global_batch_size: int = 32
    head_steps: int = 50
    finetune_steps: int = 400
    head_epochs: float = 0.0  # > 0: head_steps derived from the train split's size instead
    finetune_epochs: float = 0.0
    head_lr: float = 3e-3
    finetune_lr: float = 1e-3  # tiny learns from scratch; the CLIP presets use 1e-5
    warmup_fraction: float = 0.1  # of each stage's steps, linear from 0, then cosine to 0
    weight_decay: float = 1e-4
    optimizer: str = "adamw"
    # --- optimisation (unibed/trainer/param_groups.py, rates.py, ema.py, accumulate.py) ---
    # stage 2: block i of L learns at finetune_lr * layer_decay^(L-i), the embeddings
    # at layer_decay^(L+1) (BEiT's layer-wise decay, 4th place); 1.0: one rate
    layer_decay: float = 1.0
    finetune_head_lr: float = 0.0  # stage 2: the head's own peak rate; 0: finetune_lr
    freeze_classifier: bool = False  # stage 2: the class weights stay as stage 1 left them
    ema_decay: float = 0.0  # > 0: an EMA of the weights (every step) is what is exported
    accumulate_steps: int = 1  # micro-batches per optimizer step (global_batch_size in all)
    # --- sampling (unibed/trainer/sampling.py): per epoch, each class n -> min(n, cap) ---
    class_cap: int = 0  # > 0: a class yields at most this many images per epoch (2nd: 100)
    class_min: int = 0  # > 0: smaller classes are repeated up to this many (2nd place: 20)
    source_weights: str = ""  # "products10k=0.6,gldv2=0.4": each source's share; "": as stored
    data_seed: int = -1  # the input order's seed; -1: seed (soup ingredients vary only this)
    # --- execution ---
    mixed_precision: str = "auto"  # auto: bf16 on TPU / GPU >= sm80, fp16 older GPU, CPU float32
    strategy: str = "auto"  # auto: TPU if one resolves, mirrored on >1 GPU, else default
    tpu: str = ""  # TPU name or grpc address for the resolver; empty: the local/env TPU
    seed: int = 0
    checkpoint_every_steps: int = 100
    log_every_steps: int = 25
    eval_batch_size: int = 64
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        def need(ok: bool, key: str, why: str):
            if not ok:
                raise ConfigError(f"{key}={getattr(self, key)!r}: {why}")

        need(self.backbone == "tiny" or self.backbone in BACKBONE_PRESETS, "backbone",
             f"expected 'tiny' or one of {BACKBONE_PRESETS}")
        need(self.pooled_feature in POOLED_FEATURES, "pooled_feature", f"one of {POOLED_FEATURES}")
        need(self.mixed_precision in MIXED_PRECISION, "mixed_precision", f"one of {MIXED_PRECISION}")
        need(self.strategy in STRATEGIES, "strategy", f"one of {STRATEGIES}")
        need(self.optimizer in OPTIMIZERS, "optimizer", f"one of {OPTIMIZERS}")
        need(self.image_size > 0, "image_size", "must be positive")
        if self.backbone == "tiny":
            need(self.image_size % self.tiny_patch_size == 0, "image_size",
                 f"must be a multiple of tiny_patch_size={self.tiny_patch_size}")
            need(self.tiny_hidden_dim % self.tiny_num_heads == 0, "tiny_hidden_dim",
                 f"must be divisible by tiny_num_heads={self.tiny_num_heads}")
            need(self.tiny_projection_dim > 0, "tiny_projection_dim", "must be positive")
        need(self.embedding_dim > 0, "embedding_dim", "must be positive")
        need(self.embedding_dim <= SUBMISSION_DIM or self.embedding_dim % SUBMISSION_DIM == 0,
             "embedding_dim", f"above {SUBMISSION_DIM} it must be a multiple of {SUBMISSION_DIM} "
             "(export averages groups of dimensions down to 64)")
        need(0.0 <= self.dropout < 1.0, "dropout", "must be in [0, 1)")
        need(self.arcface_scale > 0, "arcface_scale", "must be positive")
        need(0.0 <= self.arcface_margin < 1.5, "arcface_margin", "must be in [0, 1.5) radians")
        self._validate_head_extras(need)
        need(self.global_batch_size > 0, "global_batch_size", "must be positive")
        need(self.head_steps >= 0, "head_steps", "must be >= 0")
        need(self.finetune_steps >= 0, "finetune_steps", "must be >= 0")
        need(self.head_epochs >= 0, "head_epochs", "must be >= 0")
        need(self.finetune_epochs >= 0, "finetune_epochs", "must be >= 0")
        need(self.head_lr > 0, "head_lr", "must be positive")
        need(self.finetune_lr > 0, "finetune_lr", "must be positive")
        need(0.0 <= self.warmup_fraction < 1.0, "warmup_fraction", "must be in [0, 1)")
        need(self.weight_decay >= 0, "weight_decay", "must be >= 0")
        self._validate_optimisation(need)
        need(self.checkpoint_every_steps > 0, "checkpoint_every_steps", "must be positive")
        need(self.log_every_steps > 0, "log_every_steps", "must be positive")
        need(self.eval_batch_size > 0, "eval_batch_size", "must be positive")

    def _validate_head_extras(self, need) -> None:
        need(self.margin_type in MARGIN_TYPES, "margin_type", f"one of {MARGIN_TYPES}")
        need(self.subcenters >= 1, "subcenters", "must be >= 1")
        low_high = self.dynamic_margin_range
        need(len(low_high) == 2 and 0.0 <= low_high[0] <= low_high[1] < 1.5,
             "dynamic_margin_range", "expected (low, high) with 0 <= low <= high < 1.5")
        need(self.margin_schedule_step >= 0, "margin_schedule_step", "must be >= 0")
        need(0.0 <= self.margin_schedule_max < 1.5, "margin_schedule_max",
             "must be in [0, 1.5) radians")
        need(self.head_branches >= 1, "head_branches", "must be >= 1")
    def _validate_optimisation(self, need) -> None:
        from unibed.trainer.sampling import SamplingError, parse_source_weights

        need(0.0 < self.layer_decay <= 1.0, "layer_decay", "must be in (0, 1]")
        need(self.finetune_head_lr >= 0, "finetune_head_lr", "must be >= 0 (0: finetune_lr)")
        need(0.0 <= self.ema_decay < 1.0, "ema_decay", "must be in [0, 1) (0: no EMA)")
        need(self.accumulate_steps >= 1, "accumulate_steps", "must be >= 1")
        need(self.global_batch_size % self.accumulate_steps == 0, "global_batch_size",
             f"must be a multiple of accumulate_steps={self.accumulate_steps}")
        need(self.class_cap >= 0, "class_cap", "must be >= 0 (0: no cap)")
        need(self.class_min >= 0, "class_min", "must be >= 0 (0: none)")
        need(not self.class_cap or self.class_min <= self.class_cap, "class_min",
             f"must not exceed class_cap={self.class_cap}")
        need(self.data_seed >= -1, "data_seed", "must be >= 0, or -1 for seed")
        try:
            parse_source_weights(self.source_weights)
        except SamplingError as e:
            raise ConfigError(f"source_weights={self.source_weights!r}: {e}") from None

    @property
    def input_seed(self) -> int:
        """The seed of the input order: data_seed, or seed when data_seed is -1."""
        return self.seed if self.data_seed < 0 else self.data_seed

    # --- derived ---
    def stage_steps(self, num_train_records: int | None = None) -> dict[str, int]:
        """Steps per stage; epochs (when set) turn into steps over the train split."""
        def steps(epochs: float, fixed: int) -> int:
            if epochs <= 0:
                return fixed
            if not num_train_records:
                raise ConfigError("epochs are set but the train split's size is unknown")
            return max(1, round(epochs * num_train_records / self.global_batch_size))

        return {"head": steps(self.head_epochs, self.head_steps),
                "finetune": steps(self.finetune_epochs, self.finetune_steps)}

    # --- (de)serialisation ---
    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        d = dict(d)
        unknown = sorted(d.keys() - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ConfigError(f"unknown config keys {unknown}")
        if "augment" in d and isinstance(d["augment"], dict):
            d["augment"] = _dataclass_from_dict(AugmentConfig, d["augment"])
        base = cls()
        return cls(**{k: _coerce_like(getattr(base, k), v, k) if k != "augment" else v
                      for k, v in d.items()})

    @classmethod
    def from_json(cls, text: str) -> TrainConfig:
        return cls.from_dict(json.loads(text))

    def with_overrides(self, **kv) -> TrainConfig:
        """Replace fields; `augment.<field>` (or `augment__<field>`) reaches into augment.

        Values may be typed or strings (as from the command line); either way
        they are checked against the field's current type.
        """
        top: dict = {}
        aug: dict = {}
        names = {f.name for f in dataclasses.fields(self)}
        for key, value in kv.items():
            key = key.replace("__", ".")
            if key.startswith("augment."):
                aug[key.split(".", 1)[1]] = value
            elif key in names:
                top[key] = _coerce_like(getattr(self, key), value, key)
            else:
                raise ConfigError(f"unknown config key {key!r}; known: {sorted(names)}")
        if aug:
            current = top.get("augment", self.augment)
            anames = {f.name for f in dataclasses.fields(current)}
            bad = sorted(aug.keys() - anames)
            if bad:
                raise ConfigError(f"unknown augment keys {bad}; known: {sorted(anames)}")
            top["augment"] = dataclasses.replace(
                current, **{k: _coerce_like(getattr(current, k), v, f"augment.{k}")
                            for k, v in aug.items()})
        return dataclasses.replace(self, **top)

    def with_settings(self, settings: list[str] | tuple[str, ...]) -> TrainConfig:
        """Apply `key=value` strings (the CLI's --set)."""
        kv = {}
        for s in settings:
            if "=" not in s:
                raise ConfigError(f"expected key=value, got {s!r}")
            k, v = s.split("=", 1)
            kv[k.strip()] = v.strip()
        return self.with_overrides(**kv)


def _dataclass_from_dict(cls, d: dict):
    base = cls()
    unknown = sorted(d.keys() - {f.name for f in dataclasses.fields(cls)})
    if unknown:
        raise ConfigError(f"unknown augment keys {unknown}")
    return dataclasses.replace(base, **{k: _coerce_like(getattr(base, k), v, f"augment.{k}")
                                        for k, v in d.items()})


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _coerce_like(current, value, key: str):
    """Convert `value` (typed, or a string from the command line) to current's type."""
    try:
        if isinstance(current, bool):
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
                return value.lower() in _TRUE
            raise ValueError("expected true/false")
        if isinstance(current, int):
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError("expected an integer")
            return int(value)
        if isinstance(current, float):
            if isinstance(value, bool):
                raise TypeError("expected a number")
            return float(value)
        if isinstance(current, str):
            if not isinstance(value, str):
                raise TypeError("expected a string")
            return value
        if isinstance(current, tuple):
            items = value.split(",") if isinstance(value, str) else list(value)
            if current and len(items) != len(current):
                raise ValueError(f"expected {len(current)} comma-separated values")
            kinds = [type(c) for c in current] or [str] * len(items)
            return tuple(_coerce_like(k(), v.strip() if isinstance(v, str) else v, key)
                         for k, v in zip(kinds, items))
        if dataclasses.is_dataclass(current):
            if isinstance(value, type(current)):
                return value
            raise ValueError(f"expected a {type(current).__name__}")
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{key}={value!r}: {e}") from None
    return value


# Named presets. `tiny` is sized for the generated sample on a CPU (a few
# minutes); the CLIP ones follow the top solutions: 224 px, frozen-backbone
# head stage, then about one epoch at a low learning rate.
def _presets() -> dict[str, TrainConfig]:
    # tiny: REFERENCE's head (s=30, m=0.3, dropout 0.2) on a 2-layer ViT at 64 px; tuned
    # on the generated sample (~450 steps, about a minute on 2 CPU cores)
    tiny = TrainConfig()
    clip = {"image_size": 224, "global_batch_size": 256, "head_epochs": 1.0,
            "finetune_epochs": 1.0, "head_lr": 1e-3, "finetune_lr": 1e-5,
            "warmup_fraction": 0.1, "weight_decay": 1e-4, "checkpoint_every_steps": 1000,
            "log_every_steps": 100, "eval_batch_size": 256}
    return {
        "tiny": tiny,
        # ViT-H/14 LAION-2B: what every GUIE top-6 solution fine-tuned; the default for real runs
        "vit_h14": TrainConfig(backbone="clip_vit_h_14_laion2b_s32b_b79k", **clip),
        "vit_l14": TrainConfig(backbone="clip_vit_large_patch14", **clip),
        "vit_l14_336": TrainConfig(backbone="clip_vit_large_patch14_336",
                                   **{**clip, "image_size": 336}),
        "vit_g14": TrainConfig(backbone="clip_vit_g_14_laion2b_s12b_b42k", **clip),
        # the GUIE top solutions' recipes and ours, over vit_h14 (guie_presets.py)
        **{name: TrainConfig(backbone="clip_vit_h_14_laion2b_s32b_b79k", **{**clip, **fields})
           for name, fields in GUIE_PRESETS.items()},
    }


PRESET_NAMES = ("tiny", "vit_h14", "vit_l14", "vit_l14_336", "vit_g14", "guie_1st", "guie_2nd", "guie_4th",
                "unibed_best")


def get_config(name: str) -> TrainConfig:
    presets = _presets()
    if name not in presets:
        raise ConfigError(f"unknown config preset {name!r}; known: {sorted(presets)}")
    return presets[name]
