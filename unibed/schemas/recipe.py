"""The recipe: everything that decides what a dataset build produces.

A recipe is a YAML (or JSON) document; `recipes/` holds the reference
recipe (17,691 classes) and the sample recipe. Same inputs + same recipe
=> same label map and byte-identical shards.

Unified ids are assigned source by source in the order the recipe lists
them; inside a source, classes are ordered by their source label (numeric
labels numerically, others as text) - see `ClassSelection`.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Annotated, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
    model_serializer,
    model_validator,
)
from pydantic_core import PydanticCustomError

from unibed.schemas.errors import SchemaError, describe_validation_error
from unibed.schemas.reader_specs import (
    READER_BLOCKS,
    READERS,
    SEED_READERS,
    SOURCE_NAME,
    ImageFolderSpec,
    ListingSpec,
    ParquetSpec,
    ReaderName,
    WebDatasetSpec,
)
from unibed.schemas.version import SCHEMA_VERSION

_LOCATION = re.compile(r"^(gs://[a-z0-9][a-z0-9._-]{1,220}[a-z0-9](/.*)?|[^:]+)$")


def _check_location(value: str) -> str:
    if not value or not _LOCATION.match(value):
        raise ValueError(f"must be a local path or a gs://bucket/path URL, got {value!r}")
    return value.rstrip("/") if value != "/" else value


StorageLocation = Annotated[str, AfterValidator(_check_location)]


def _only_numbers(value):
    """Pydantic's lax mode reads true as 1 and "10" as 10; in a recipe both are mistakes
    (YAML 1.1 reads yes/no/on/off as booleans: `per_class_cap: yes` would mean 1)."""
    if isinstance(value, bool):
        raise PydanticCustomError("number_type", "must be a number, got the boolean {value} (YAML "
                                  "reads true/false/yes/no/on/off as booleans)",
                                  {"value": str(value).lower()})
    if isinstance(value, str):
        raise PydanticCustomError("number_type", "must be a number, got the string {value}",
                                  {"value": repr(value)})
    return value


# Every number of a recipe. A float with a fraction is no WholeNumber (288.0 is 288).
WholeNumber = Annotated[int, BeforeValidator(_only_numbers)]
Number = Annotated[float, BeforeValidator(_only_numbers)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ClassSelection(_Strict):
    """Which of a source's classes enter the label space.

    `all`: every class with at least `min_images` usable images.
    `top_k`: the k classes with the most listed images (ties: smaller
    source label first); fewer when the source has fewer.
    """

    mode: Literal["all", "top_k"] = "all"
    k: WholeNumber | None = Field(default=None, gt=0)
    min_images: WholeNumber = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _k_matches_mode(self):
        if self.mode == "top_k" and self.k is None:
            raise ValueError("mode 'top_k' needs k")
        if self.mode == "all" and self.k is not None:
            raise ValueError("k is only meaningful with mode 'top_k'")
        return self


_READER_FIELDS = ("reader", *READER_BLOCKS)


class SourceSpec(_Strict):
    """One source: its name (the first part of its image keys and its label-map
    block), the reader of its layout, where it is, and what to take from it."""

    name: str = Field(pattern=SOURCE_NAME.pattern)
    # None: the reader of the same name (imagenet, products10k, gldv2, sop, food101, shopee)
    reader: ReaderName | None = None
    location: StorageLocation  # the source root in its published layout, local or gs://
    layout: str | None = None  # None: the reader detects it
    subset: Literal["all", "clean"] = "all"  # gldv2: 'clean' = GLDv2-clean (train_clean.csv)
    splits: tuple[str, ...] = ("train",)  # the source's own splits to use
    classes: ClassSelection = ClassSelection()
    per_class_cap: WholeNumber | None = Field(default=None, gt=0)  # images kept per class at most
    expect_classes: WholeNumber | None = Field(default=None, gt=0)  # assert the class count (full data)
    # the generic readers' options (unibed/schemas/reader_specs.py), one block for the reader used
    imagefolder: ImageFolderSpec | None = None
    listing: ListingSpec | None = None
    webdataset: WebDatasetSpec | None = None
    parquet: ParquetSpec | None = None

    @model_validator(mode="after")
    def _reader_and_options(self):
        reader = self.reader_name
        if reader not in READERS:
            raise ValueError(f"source {self.name!r} needs `reader:` (one of {', '.join(READERS)})")
        if reader in SEED_READERS and self.name != reader:
            raise ValueError(f"the {reader} reader serves the source named {reader}, not {self.name!r}")
        for block in READER_BLOCKS:
            if getattr(self, block) is not None and block != reader:
                raise ValueError(f"a `{block}:` block is for reader {block}, this source uses {reader}")
        if reader == "listing" and self.listing is None:
            raise ValueError("reader listing needs a `listing:` block (files, path_column, ...)")
        return self

    @model_serializer(mode="wrap")
    def _without_unset_reader_fields(self, handler):
        """A recipe that names no reader and no block dumps (and digests) as before
        these fields existed, so outputs built from it still match their recipe."""
        data = handler(self)
        for key in _READER_FIELDS:
            if data.get(key) is None:
                data.pop(key, None)
        return data

    @property
    def reader_name(self) -> str:
        return self.reader or self.name

    def reader_options(self):
        """The generic reader's block (its defaults when not given); None for the others."""
        if self.reader_name not in READER_BLOCKS:
            return None
        return getattr(self, self.reader_name) or READER_BLOCKS[self.reader_name]()


class SplitSpec(_Strict):
    validation_fraction: Number = Field(default=0.1, ge=0.0, lt=1.0)
    salt: str = "unibed-split-v1"  # changes which images are held out, deterministically


class ProbeThresholds(_Strict):
    """Per probe-hash kind (unibed/dataplane/images/robust_hashes.py), the Hamming radius
    within which a probe finds its target: another image's pHash, or for top85 the same
    probe of another image. None turns a kind off. At most 4 (the probe search has no
    flips: radius + 1 blocks). On ~50 real photographs (benchmarks/bench_dedup_edits.py)
    the edited copies' probes meet their originals at 0-2 bits and no two distinct
    photographs come within 14 through any probe; but the mirrored left half of a pier
    shot head-on comes within 2 of its right half, while 49 of 51 mirrored copies sit at
    exactly 0 (the mirror probe comes from the pHash's own DCT): mirror 0, the rest 2."""

    mirror: WholeNumber | None = Field(default=0, ge=0, le=4)  # a horizontally mirrored copy
    crop92: WholeNumber | None = Field(default=2, ge=0, le=4)  # a copy cropped by ~4% per side
    crop84: WholeNumber | None = Field(default=2, ge=0, le=4)  # ~8%
    crop76: WholeNumber | None = Field(default=2, ge=0, le=4)  # ~12%
    trim: WholeNumber | None = Field(default=2, ge=0, le=4)  # a copy with uniform bars (letterbox)
    top85: WholeNumber | None = Field(default=2, ge=0, le=4)  # a caption strip over the bottom 15%
    rotate: WholeNumber | None = Field(default=2, ge=0, le=4)  # turned a few degrees, filled corners


class DedupSpec(_Strict):
    exact: StrictBool = True  # drop byte-identical copies (sha256 of the published bytes)
    # drop images whose 64-bit pHash is within this Hamming distance of a kept
    # one; None turns the near-duplicate search off. 10: measured precision
    # 1.000 up to 10 on the sample (first false pair at 12), recall 0.77 vs
    # 0.73 at 8 (benchmarks/bench_dedup_threshold.py). pHash distances are even.
    near_hamming_threshold: WholeNumber | None = Field(default=10, ge=0, le=32)
    # the probe hashes' radii, searched along with the pHash's (only when it is on)
    probes: ProbeThresholds = ProbeThresholds()
    # images that no training image may near-duplicate (e.g. a benchmark's queries)
    exclusion_sets: tuple[StorageLocation, ...] = ()


class ImageSpec(_Strict):
    # How the stored size follows from shorter_side (S); images are never upscaled.
    # "pow2": reduced by a power of two only (JPEG in libjpeg's DCT domain, others by box
    #   averaging) to a shorter side in [S, 2S); a source below 2S is stored at its size, a
    #   JPEG that needs no change as its own bytes minus metadata. The default, because
    #   training takes random-resized 224-px crops of whatever is stored, so an exact size
    #   buys nothing, while pow2 keeps more resolution for later higher-resolution
    #   fine-tuning and skips a resampling pass (the largest CPU cost of the step) and its
    #   blur. The cost is storage (benchmarks/bench_preprocess.py, q90 photo-like JPEGs):
    #   a 500x375 source is kept as is, 47 KB against 23 KB at 384x288 under "exact";
    #   a 1600x1200 one becomes 400x300, 18.6 KB against 17.2 KB.
    # "exact": resampled (BICUBIC) to a shorter side of exactly S.
    resize: Literal["pow2", "exact"] = "pow2"
    # S. 288 leaves room for 224-px random-resized crops with scale jitter at full resolution.
    shorter_side: WholeNumber = Field(default=288, ge=32, le=4096)
    jpeg_quality: WholeNumber = Field(default=90, ge=50, le=100)  # of re-encoded images, not as-is JPEGs
    min_side: WholeNumber = Field(default=32, ge=1)  # smaller inputs are rejected
    max_pixels: WholeNumber = Field(default=89_478_485, ge=1)  # Pillow's bomb limit; larger is rejected
    # An input file or archive member larger than this is rejected (too_large) unread:
    # checked from the file size or member header before reading and while inflating
    # a zip member, so one member cannot take a worker's memory. 64 MiB is far above
    # any photo of the three sources yet keeps a worker's peak well under 1 GB.
    max_input_bytes: WholeNumber = Field(default=64 * 1024 * 1024, ge=1)


class ShardSpec(_Strict):
    target_bytes: WholeNumber = Field(default=150 * 1024 * 1024, ge=1024)
    # shard counts are rounded up to a multiple of this (TPU hosts read evenly)
    count_multiple: WholeNumber = Field(default=8, ge=1)


# --- evaluation: an open-set retrieval split of classes the model never trains on ------------


class HoldoutSpec(_Strict):
    """Classes of one source held out of training for the open-set evaluation.

    `classes`: how many (a whole number >= 1) or what fraction (0 < f < 1) of the source's
    candidate classes (those with at least queries_per_class + 1 eligible images) become
    query classes; `distractors`: how many more classes add their images to the index only.
    `take_from`: "unselected" takes them among the classes the training selection leaves out
    (GLDv2 beyond the top k: the training label space is unchanged); "all" takes them first,
    at the cost of training classes (a source whose every class is trained on)."""

    source: Literal["imagenet", "products10k", "gldv2"]
    classes: Number = Field(gt=0)
    distractors: WholeNumber = Field(default=0, ge=0)
    take_from: Literal["unselected", "all"] = "unselected"

    @model_validator(mode="after")
    def _count_or_fraction(self):
        if self.classes >= 1 and self.classes != int(self.classes):
            raise ValueError(f"classes must be a whole number or a fraction below 1, got {self.classes}")
        return self

    def count(self, candidates: int) -> int:
        """Query classes to hold out among `candidates` classes."""
        if self.classes >= 1:
            return int(self.classes)
        return max(1, round(self.classes * candidates))


class EvaluationSpec(_Strict):
    """The build's evaluation split (DESIGN.md, "The evaluation split"): held-out classes
    chosen by sha256(salt, source/label) before dedup, never written to train/validation,
    with ids after the training label space; their images are retrieval-query and
    retrieval-index records, and no training image may near-duplicate one."""

    holdout: tuple[HoldoutSpec, ...] = Field(min_length=1)
    queries_per_class: WholeNumber = Field(default=1, ge=1)
    index_per_class: WholeNumber = Field(default=10, ge=1)  # at most, per class, before dedup
    salt: str = "unibed-eval-v1"

    def for_source(self, name: str) -> HoldoutSpec | None:
        return next((h for h in self.holdout if h.source == name), None)


class Recipe(_Strict):
    schema_version: Annotated[Literal[1], BeforeValidator(_only_numbers)] = SCHEMA_VERSION
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    sources: tuple[SourceSpec, ...] = Field(min_length=1)
    split: SplitSpec = SplitSpec()
    dedup: DedupSpec = DedupSpec()
    image: ImageSpec = ImageSpec()
    shards: ShardSpec = ShardSpec()
    output: StorageLocation
    expect_classes: WholeNumber | None = Field(default=None, gt=0)  # total, e.g. 17691
    evaluation: EvaluationSpec | None = None  # the open-set evaluation split; None: none

    @model_validator(mode="after")
    def _evaluation_sources(self):
        if self.evaluation is not None:
            held = [h.source for h in self.evaluation.holdout]
            unknown = sorted(set(held) - {s.name for s in self.sources})
            if unknown or len(set(held)) != len(held):
                raise ValueError(f"evaluation.holdout names each recipe source once at most, got {held}")
        return self

    @model_validator(mode="after")
    def _sources_unique(self):
        names = [s.name for s in self.sources]
        if len(set(names)) != len(names):
            raise ValueError(f"each source may appear once, got {names}")
        if self.expect_classes is not None and all(s.expect_classes for s in self.sources):
            total = sum(s.expect_classes for s in self.sources)
            if total != self.expect_classes:
                raise ValueError(
                    f"expect_classes {self.expect_classes} != sum over sources {total}"
                )
        return self

    def source(self, name: str) -> SourceSpec:
        for s in self.sources:
            if s.name == name:
                return s
        raise KeyError(name)

    def to_dict(self) -> dict:
        data = self.model_dump(mode="json")
        if data["evaluation"] is None:  # a recipe without one digests as before the section existed
            del data["evaluation"]
        return data

    def digest(self) -> str:
        """sha256 of the canonical JSON form: two recipes that mean the same hash the same."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    def with_source_locations(self, locations: dict[str, str]) -> Recipe:
        """A copy with some sources read from elsewhere ({source name: location})."""
        unknown = set(locations) - {s.name for s in self.sources}
        if unknown:
            raise SchemaError(f"recipe {self.name} has no source(s) {sorted(unknown)}")
        data = self.to_dict()
        for source in data["sources"]:
            source["location"] = locations.get(source["name"], source["location"])
        return parse_recipe(data, where="<source locations>")

    def with_overrides(self, **changes) -> Recipe:
        """A copy with top-level fields replaced (e.g. output), validated again."""
        return parse_recipe({**self.to_dict(), **changes}, where="<overrides>")


def parse_recipe(data: dict, where: str = "<recipe>") -> Recipe:
    if not isinstance(data, dict):
        raise SchemaError(f"{where}: a recipe must be a mapping, got {type(data).__name__}")
    version = data.get("schema_version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        raise SchemaError(f"{where}: schema_version {version!r} is not supported (this is {SCHEMA_VERSION})")
    try:
        return Recipe.model_validate(data)
    except ValidationError as e:
        raise SchemaError(f"{where}: invalid recipe\n{describe_validation_error(e)}") from None


def recipe_from_text(text: str, where: str, **overrides) -> Recipe:
    """Parse a recipe's YAML/JSON text, apply top-level overrides (None = keep), validate."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise SchemaError(f"{where}: not valid YAML/JSON: {e}") from None
    if isinstance(data, dict):
        data.update({k: v for k, v in overrides.items() if v is not None})
    return parse_recipe(data, where=where)

