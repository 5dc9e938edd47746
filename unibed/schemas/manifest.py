"""The dataset manifest: `manifest.json`, written next to the shards.

It says what was built (recipe, schema version, label space), where every
record went (shards with their record counts and bytes) and where every
input went: for each source, inputs = written + duplicates + rejected.
Loading a manifest re-checks those sums, so a manifest that does not add
up is never accepted.
"""

from __future__ import annotations

import json
import re

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from unibed.schemas.errors import SchemaError, describe_validation_error
from unibed.schemas.heldout import RETRIEVAL_SPLITS
from unibed.schemas.recipe import Recipe
from unibed.schemas.version import SCHEMA_VERSION

SPLITS = ("train", "validation")  # the training splits (labels in the training label space)
ALL_SPLITS = SPLITS + RETRIEVAL_SPLITS  # + the evaluation split's (held-out labels)
_SHARD_NAME = re.compile(r"^(train|validation|retrieval-query|retrieval-index)-(\d{5})-of-(\d{5})\.tfrecord$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ShardInfo(_Strict):
    path: str  # relative to the manifest's folder
    num_records: int = Field(ge=0)
    num_bytes: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class SplitInfo(_Strict):
    num_records: int = Field(ge=0)
    num_bytes: int = Field(ge=0)
    shards: tuple[ShardInfo, ...]

    @model_validator(mode="after")
    def _sums(self):
        records = sum(s.num_records for s in self.shards)
        if records != self.num_records:
            raise ValueError(f"shards hold {records} records, split says {self.num_records}")
        if sum(s.num_bytes for s in self.shards) != self.num_bytes:
            raise ValueError("shard bytes do not add up to the split's num_bytes")
        return self


class SourceAccounting(_Strict):
    """Every input image of one source, and where it went."""

    inputs: int = Field(ge=0)  # images the source offered after class selection
    written: int = Field(ge=0)
    duplicates: int = Field(ge=0)
    rejected: int = Field(ge=0)
    rejected_by_reason: dict[str, int] = {}
    # selected out by the recipe (class not chosen, over the per-class cap):
    # not inputs, but counted so the source's full listing is explained
    not_selected: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _balance(self):
        if self.inputs != self.written + self.duplicates + self.rejected:
            raise ValueError(
                f"inputs {self.inputs} != written {self.written} + duplicates "
                f"{self.duplicates} + rejected {self.rejected}"
            )
        if self.rejected_by_reason and sum(self.rejected_by_reason.values()) != self.rejected:
            raise ValueError("rejected_by_reason does not add up to rejected")
        return self


class EvaluationInfo(_Strict):
    """The evaluation split: held-out classes (ids first_id .. first_id + num_classes - 1,
    listed in `label_map`), written as the retrieval-query / retrieval-index splits."""

    label_map: str = "heldout_label_map.csv"
    label_map_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    first_id: int = Field(ge=1)
    num_classes: int = Field(ge=0)
    label_ranges: dict[str, tuple[int, int]]  # source -> (first id, last id) of its held-out classes
    # per source: training/validation candidates dropped as near duplicates of an evaluation
    # image (duplicates.csv kind `evaluation`): the leak guard at work
    leak_guard_drops: dict[str, int] = {}

    def id_range(self) -> range:
        return range(self.first_id, self.first_id + self.num_classes)


class Manifest(_Strict):
    schema_version: int = SCHEMA_VERSION
    unibed_version: str
    created_at: str  # ISO 8601; the one field that differs between identical builds
    recipe: Recipe
    recipe_digest: str
    num_classes: int = Field(gt=0)
    label_ranges: dict[str, tuple[int, int]]  # source -> (first id, last id), inclusive
    label_map: str = "label_map.csv"
    label_map_sha256: str
    splits: dict[str, SplitInfo]
    records_per_source: dict[str, dict[str, int]]  # split -> source -> records
    records_per_class: dict[str, dict[int, int]]  # split -> unified id -> records
    accounting: dict[str, SourceAccounting]
    reports: dict[str, str] = {}  # e.g. {"duplicates": "duplicates.csv", "rejects": "rejects.csv"}
    evaluation: EvaluationInfo | None = None  # the recipe's evaluation split, when it has one

    @model_validator(mode="after")
    def _consistent(self):
        if self.schema_version != SCHEMA_VERSION:
            raise ValueError(f"schema_version {self.schema_version} is not {SCHEMA_VERSION}")
        if self.recipe_digest != self.recipe.digest():
            raise ValueError("recipe_digest does not match the embedded recipe")
        if set(self.splits) - set(ALL_SPLITS):
            raise ValueError(f"unknown splits {sorted(set(self.splits) - set(ALL_SPLITS))}")
        if self.evaluation is None and set(self.splits) & set(RETRIEVAL_SPLITS):
            raise ValueError("retrieval splits need the manifest's evaluation section")
        if self.evaluation is not None and self.evaluation.first_id != self.num_classes:
            raise ValueError(f"held-out ids must start after the label space, at {self.num_classes}")
        for split, info in self.splits.items():
            for shard in info.shards:
                m = _SHARD_NAME.match(shard.path.rsplit("/", 1)[-1])
                if not m or m.group(1) != split or int(m.group(3)) != len(info.shards):
                    raise ValueError(f"shard {shard.path} is not named {split}-NNNNN-of-{len(info.shards):05d}.tfrecord")
            if sum(self.records_per_source.get(split, {}).values()) != info.num_records:
                raise ValueError(f"records_per_source[{split}] does not add up to the split")
            if sum(self.records_per_class.get(split, {}).values()) != info.num_records:
                raise ValueError(f"records_per_class[{split}] does not add up to the split")
            ids = self.evaluation.id_range() if split in RETRIEVAL_SPLITS else range(self.num_classes)
            bad = [c for c in self.records_per_class.get(split, {}) if c not in ids]
            if bad:
                raise ValueError(f"records_per_class[{split}] has ids outside the label space "
                                 f"[{ids.start}, {ids.stop}) of its split: {bad[:5]}")
        written = sum(a.written for a in self.accounting.values())
        if written != sum(s.num_records for s in self.splits.values()):
            raise ValueError(f"accounting says {written} written, shards hold a different number")
        return self

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str, where: str = "manifest.json") -> Manifest:
        try:
            return cls.model_validate_json(text)
        except ValidationError as e:
            raise SchemaError(f"{where}: invalid manifest\n{describe_validation_error(e)}") from None
