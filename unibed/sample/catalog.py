"""The sample in memory: its classes, its images (bytes and fate) and its duplicate groups."""

from __future__ import annotations

from dataclasses import dataclass, field

from unibed.sample.drawing import Box


@dataclass(frozen=True)
class SampleClass:
    source: str
    label: str  # the source's own label, as text
    name: str  # what a reader reports as the class name
    style: object  # the look its images are drawn with (a scene module's style)
    group: int | None = None  # Products-10K group id
    category_url: str = ""  # GLDv2 Wikimedia category


@dataclass
class SampleImage:
    source: str
    image_id: str
    label: str | None  # None: the bytes are published but no metadata row names them
    data: bytes | None  # None: a metadata row names it but no layout holds it
    split: str = "train"
    expected: str = "ok"  # "ok" | "duplicate" | "reject"
    reject_reason: str | None = None
    quirk: str | None = None
    duplicate_group: int | None = None
    in_clean: bool = True  # GLDv2: listed in train_clean.csv
    boxes: tuple[Box, ...] = ()  # object boxes (ImageNet val lists them)

    @property
    def key(self) -> str:
        return f"{self.source}/{self.image_id}"


@dataclass(frozen=True)
class DuplicateGroup:
    id: int
    kind: str  # "exact" | "near"
    transform: str
    members: tuple[str, ...]  # image keys, original first
    conflicting_labels: bool
    cross_source: bool
    phash_distance: int
    # what duplicates.csv should say: "exact", "near" (pHashes within the threshold) or
    # "near:<probe kind>" (the closest match is a probe hash: near:mirror, near:crop84, ...)
    match: str = "near"


@dataclass
class Catalog:
    classes: dict[str, list[SampleClass]]
    images: list[SampleImage] = field(default_factory=list)
    groups: list[DuplicateGroup] = field(default_factory=list)

    def class_of(self, source: str, label: str) -> SampleClass:
        return next(c for c in self.classes[source] if c.label == label)

    def images_of(self, source: str) -> list[SampleImage]:
        return sorted((im for im in self.images if im.source == source), key=lambda im: im.image_id)
