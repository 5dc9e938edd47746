"""The reader contract shared by the three dataset readers.

A reader works in two steps, like a TFDS builder's split generators:

1. `open_index(root, ...)` reads metadata only (CSVs, folder listings, archive
   headers) and returns a SourceIndex: the classes, the images the metadata
   lists, metadata-level rejections, and a list of small picklable ReadUnits
   (one archive, one inner tar, one batch of files).
2. `read_unit(unit, index, max_input_bytes)` streams one unit and yields
   SourceImage (record + raw bytes) or Rejection items; nothing larger than
   max_input_bytes is read into memory. Units are independent, so a Beam pipeline
   fans them out across workers; `iter_source` runs them in order locally.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from unibed.schemas.recipe import ImageSpec
from unibed.schemas.source_record import Rejection, RejectReason, SourceImage

ReadItem = SourceImage | Rejection
# a read without a recipe (tools, tests) takes the recipe's default limit
DEFAULT_MAX_INPUT_BYTES = ImageSpec().max_input_bytes


@dataclass(frozen=True)
class ClassInfo:
    source_label: str  # the source's own label, as text
    name: str  # human-readable
    # images the metadata lists for it (None: unknown before reading)
    listed_images: int | None = None


@dataclass(frozen=True)
class ReadUnit:
    """One independent piece of reading work (picklable, small)."""

    source: str
    kind: str  # reader-specific, e.g. "inner_tar", "files", "zip_members", "tar"
    uri: str  # the file this unit reads (archive, or folder for "files")
    offset: int = 0  # byte range inside `uri`, for nested archives
    size: int = -1
    items: tuple[str, ...] = ()  # file paths / member names, for batched units
    checksum: str = ""  # expected md5 of the whole `uri`, verified while streaming
    label: str = ""  # a label every image of the unit shares (e.g. an ImageNet synset tar)


@dataclass
class SourceIndex:
    source: str
    layout: str
    root: str
    classes: dict[str, ClassInfo]
    units: list[ReadUnit]
    # image_id -> source label for every image the metadata lists; None when
    # the layout has no listing apart from the bytes (labels come from paths)
    listed: dict[str, str] | None = None
    # image_id -> the source's split, where the metadata says so
    splits: dict[str, str] = field(default_factory=dict)
    rejections: list[Rejection] = field(default_factory=list)  # metadata-level
    # named subsets of the listed ids the publisher defines, e.g. gldv2's
    # "clean" (GLDv2-clean, from train_clean.csv); membership only, no labels
    subsets: dict[str, frozenset[str]] = field(default_factory=dict)
    # the reader module that reads the units ("": the one named like the source);
    # generic readers serve sources of any name
    reader: str = ""
    options: object = None  # the generic reader's recipe block, where reading units needs it

    @property
    def num_listed(self) -> int | None:
        return None if self.listed is None else len(self.listed)


def iter_source(
    index: SourceIndex,
    read_unit: Callable[[ReadUnit, SourceIndex, int], Iterator[ReadItem]],
    max_input_bytes: int = DEFAULT_MAX_INPUT_BYTES,
) -> Iterator[ReadItem]:
    """Every input of a source, accounted for: metadata rejections, each unit's
    images and rejections, then images the metadata lists that no unit held.
    An input over `max_input_bytes` is a TOO_LARGE rejection, never held."""
    yield from index.rejections
    seen: set[str] = set()
    for unit in index.units:
        for item in read_unit(unit, index, max_input_bytes):
            # an id a unit rejected is accounted for, not missing
            seen.add(item.record.image_id if isinstance(item, SourceImage) else item.image_id)
            yield item
    if index.listed is not None:
        for image_id in sorted(index.listed.keys() - seen):
            yield Rejection(
                index.source,
                image_id,
                RejectReason.MISSING_IMAGE,
                detail="listed in the metadata but no such image in the data",
                where=index.root,
            )
