"""Source records: one image as a dataset publishes it, before any processing.

Readers (unibed/dataplane/sources) yield these; every later stage carries
(source, image_id) as the image's identity. These are hot-path objects
(millions per build), so they are slotted dataclasses validated on creation,
not pydantic models.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum

from unibed.schemas.errors import SchemaError

SOURCES = ("imagenet", "products10k", "gldv2")  # the seed datasets of the reference label space
# Any source a recipe names (the seeds, the named extras, a user's own): it is
# the first part of every image key 'source/image_id', so it holds no '/'.
SOURCE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
_URI = re.compile(r"^(gs://[^/]+/.+|[^:]+)$")  # gs://bucket/key or a local path


class LocationKind(str, Enum):
    FILE = "file"  # a whole file
    TAR_MEMBER = "tar_member"  # bytes [offset, offset+size) of `uri`; tars may nest
    ZIP_MEMBER = "zip_member"  # member `members[0]` of the zip at `uri`
    # row `members[1]` of row group `members[0]` of the Parquet file at `uri` (0-based)
    PARQUET_ROW = "parquet_row"


@dataclass(frozen=True, slots=True)
class Location:
    """Where an image's bytes are.

    For tar members the bytes are addressable directly: tar stores members
    uncompressed, so a member of a tar inside a tar still sits at a fixed
    byte range of the outer file. `members` names the path at each nesting
    level (for people and reports); `offset`/`size` are in the outer file.
    """

    kind: LocationKind
    uri: str
    members: tuple[str, ...] = ()
    offset: int = -1
    size: int = -1

    def __post_init__(self):
        if not isinstance(self.kind, LocationKind):
            object.__setattr__(self, "kind", LocationKind(self.kind))
        if not self.uri or not _URI.match(self.uri):
            raise SchemaError(f"location uri must be a local path or gs://bucket/key: {self.uri!r}")
        if self.kind is LocationKind.FILE and self.members:
            raise SchemaError(f"a file location has no members: {self}")
        if self.kind is not LocationKind.FILE and not self.members:
            raise SchemaError(f"a {self.kind.value} location needs its member path: {self.uri}")
        if self.kind is LocationKind.TAR_MEMBER and (self.offset < 0 or self.size < 0):
            raise SchemaError(f"a tar member location needs offset and size: {self}")

    def __str__(self) -> str:
        return "!".join((self.uri, *self.members))


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """One published image: who published it, its id there, its label there, where it is."""

    source: str
    image_id: str
    label: str  # the source's own label (wnid, SKU class, landmark id), as text
    location: Location
    split: str = "train"  # the source's own split ("train", "val", "test")

    def __post_init__(self):
        if not SOURCE_NAME.match(self.source):
            raise SchemaError(f"bad source name {self.source!r}; expected {SOURCE_NAME.pattern}")
        if not self.image_id:
            raise SchemaError(f"empty image id at {self.location}")
        if not self.label:
            raise SchemaError(f"empty label for {self.source}/{self.image_id}")

    @property
    def key(self) -> str:
        """Globally unique image key, stable across runs: 'source/image_id'."""
        return f"{self.source}/{self.image_id}"


class RejectReason(str, Enum):
    """Why an input image did not make it; every rejected input has exactly one."""

    # metadata and layout (readers)
    MALFORMED_ROW = "malformed_row"
    DUPLICATE_ID = "duplicate_id"
    MISSING_IMAGE = "missing_image"  # listed by the metadata, bytes absent
    UNLABELLED_IMAGE = "unlabelled_image"  # bytes present, metadata does not list it
    UNSAFE_MEMBER_PATH = "unsafe_member_path"  # absolute or '..' archive member
    MALFORMED_NAME = "malformed_name"  # file name does not follow the layout's scheme, or is not UTF-8
    # the archive itself is damaged (a bad header, truncated, no end marker): the
    # detail names the byte offset; the bytes there could not be read as members
    DAMAGED_ARCHIVE = "damaged_archive"
    TOO_LARGE = "too_large"  # more bytes than the recipe's image.max_input_bytes
    # image content (build)
    EMPTY_FILE = "empty_file"
    NOT_AN_IMAGE = "not_an_image"
    TRUNCATED = "truncated"
    TOO_SMALL = "too_small"
    TOO_MANY_PIXELS = "too_many_pixels"
    DECODE_TOO_COSTLY = "decode_too_costly"  # e.g. a JPEG of thousands of scans


@dataclass(frozen=True, slots=True)
class Rejection:
    """An input that was not used, with the reason; reports and accounting are built from these."""

    source: str
    image_id: str  # may be "" when the input has no usable id (e.g. an unparseable row)
    reason: RejectReason
    detail: str = ""  # human-readable: file:line, the offending value, ...
    where: str = ""  # the file (and line / member) the rejection refers to

    def __post_init__(self):
        if not isinstance(self.reason, RejectReason):
            object.__setattr__(self, "reason", RejectReason(self.reason))


@dataclass(frozen=True, slots=True)
class SourceImage:
    """A record together with its raw published bytes, as a reader streams it."""

    record: SourceRecord
    data: bytes = field(repr=False)
