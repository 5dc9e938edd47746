"""Generic WebDataset reader, layout `tars`: tar shards (recipe glob
`webdataset.shards`, `*.tar` by default) of samples KEY.jpg (or png, webp, ...)
+ KEY.cls (the label as text) or KEY.json (the label in the field
`webdataset.label_field`) - what img2dataset writes, so its output is an
input here. KEY is the member path up to the first '.' of its file name;
image id = KEY; label = the .cls text or the JSON field (a string or integer).

open_index streams every shard once reading only the small label members
(images are skipped by seeking), so `index.listed` holds every labelled key,
and each shard's unit names the keys whose label it holds: a sample's files
live in one shard.

Bad metadata policy (docs/layouts.md), as the seed readers:
- no shard matches the glob -> SourceLayoutError;
- a label member that is empty, not UTF-8 text, over 64 KiB, JSON without the
  field or with a value that is no string or integer, or a label over 200
  characters -> MALFORMED_ROW at `shard!member`;
- a key labelled twice (in one shard or two) -> the first wins, later labels
  DUPLICATE_ID; an image met twice for one key (KEY.jpg and KEY.png) ->
  the first wins, later ones DUPLICATE_ID;
- a label with no image -> MISSING_IMAGE (base.iter_source); an image
  without a label in its own shard -> UNLABELLED_IMAGE;
- unsafe members, links, devices -> UNSAFE_MEMBER_PATH; non-UTF-8 names ->
  MALFORMED_NAME; a damaged shard -> DAMAGED_ARCHIVE naming the offset (the
  members after a bad header still read); an image over max_input_bytes ->
  TOO_LARGE, never read (archives.iter_tar_members).
"""

from __future__ import annotations

import json
import posixpath
import sys
from collections import Counter, defaultdict
from collections.abc import Iterator

from unibed.dataplane import storage
from unibed.dataplane.sources.archives import TarMember, iter_tar_members
from unibed.dataplane.sources.base import (
    DEFAULT_MAX_INPUT_BYTES,
    ClassInfo,
    ReadItem,
    ReadUnit,
    SourceIndex,
)
from unibed.dataplane.sources.common import (
    Listing,
    check_layout,
    is_image_name,
    no_layout_found,
    quoted,
)
from unibed.schemas.reader_specs import WebDatasetSpec
from unibed.schemas.source_record import (
    Location,
    LocationKind,
    Rejection,
    RejectReason,
    SourceImage,
    SourceRecord,
)

LAYOUTS = ("tars",)
MAX_LABEL_MEMBER_BYTES = 64 << 10
MAX_LABEL_CHARS = 200


def open_index(source: str, root: str, spec: WebDatasetSpec, layout: str | None = None) -> SourceIndex:
    check_layout(source, layout or "tars", LAYOUTS, root)
    shards = [path for path, _ in storage.list_files(storage.join(root, spec.shards))]
    if not shards:
        raise no_layout_found(source, root, {"tars": f"{spec.shards} (KEY.jpg + KEY.cls / KEY.json)"})
    listing, rejections = Listing(source), []
    keys_of: dict[str, list[str]] = defaultdict(list)  # shard -> the keys whose label it holds
    suffix = ".cls" if spec.label_field is None else ".json"
    for shard in shards:
        for key, label, where in _labels(source, shard, suffix, spec.label_field, rejections):
            if listing.add(key, sys.intern(label), where):
                keys_of[shard].append(key)
    counts = Counter(listing.labels.values())
    classes = {label: ClassInfo(label, label, counts[label]) for label in sorted(counts, key=_label_order)}
    units = [ReadUnit(source, "tar", shard, items=tuple(keys_of[shard])) for shard in shards]
    return SourceIndex(source, "tars", root, classes, units, listed=listing.labels,
                       rejections=rejections + listing.rejections, reader="webdataset")


def read_unit(
    unit: ReadUnit, index: SourceIndex, max_input_bytes: int = DEFAULT_MAX_INPUT_BYTES
) -> Iterator[ReadItem]:
    labelled, seen = set(unit.items), set()
    with storage.open_read(unit.uri) as raw:
        for member in iter_tar_members(raw, max_bytes=max_input_bytes, want=is_image_name):
            key, where = _key(member.name), f"{unit.uri}!{member.name}" if member.name else unit.uri
            if not (is_image_name(member.name) or member.rejected in _ALWAYS_REPORTED):
                continue  # labels, captions, metadata: no inputs
            if member.rejected:
                yield Rejection(unit.source, key, member.rejected, member.detail, where)
            elif key not in labelled:
                yield Rejection(unit.source, key, RejectReason.UNLABELLED_IMAGE,
                                f"no label member for {key!r} in this shard", where)
            elif key in seen:
                yield Rejection(unit.source, key, RejectReason.DUPLICATE_ID,
                                f"a second image for {key!r}; the first wins", where)
            else:
                seen.add(key)
                yield _image(unit, index, key, member)


# member problems reported whatever the member's name says it is
_ALWAYS_REPORTED = (RejectReason.UNSAFE_MEMBER_PATH, RejectReason.MALFORMED_NAME, RejectReason.DAMAGED_ARCHIVE)


def _image(unit: ReadUnit, index: SourceIndex, key: str, member: TarMember) -> SourceImage:
    location = Location(LocationKind.TAR_MEMBER, unit.uri, (member.name,), member.offset, member.size)
    return SourceImage(SourceRecord(unit.source, key, index.listed[key], location), member.data)


def _key(name: str) -> str:
    """WebDataset's sample key: the path up to the first '.' of the file name."""
    folder, base = posixpath.split(name)
    return posixpath.join(folder, base.split(".", 1)[0])


def _label_order(label: str) -> tuple:
    return (0, int(label), "") if label.isdigit() else (1, 0, label)


def _labels(
    source: str, shard: str, suffix: str, field: str | None, rejections: list[Rejection]
) -> Iterator[tuple[str, str, str]]:
    """(key, label, where) of every well-formed label member of a shard, in order."""
    with storage.open_read(shard) as raw:
        members = iter_tar_members(raw, max_bytes=MAX_LABEL_MEMBER_BYTES, want=lambda n: n.endswith(suffix))
        for member in members:
            if not member.name.endswith(suffix) or member.rejected in _ALWAYS_REPORTED:
                continue  # images and damage: reported once, when the shard is read
            key, where = _key(member.name), f"{shard}!{member.name}"
            label, problem = _label_of(member, field)
            if problem:
                rejections.append(Rejection(source, key, RejectReason.MALFORMED_ROW, problem, where))
            else:
                yield key, label, where


def _label_of(member: TarMember, field: str | None) -> tuple[str, str]:
    """(label, "") or ("", why the member holds no label)."""
    if member.rejected:
        return "", f"label member of {member.size} bytes (limit {MAX_LABEL_MEMBER_BYTES})"
    try:
        text = member.data.decode("utf-8")
        value = text if field is None else json.loads(text)[field]
    except (ValueError, KeyError, TypeError, IndexError):  # ValueError: also bad UTF-8, huge ints
        wanted = "UTF-8 text" if field is None else f"a JSON object with field {field!r}"
        return "", f"expected {wanted}: {quoted(member.data[:400].decode('utf-8', 'replace'))}"
    if isinstance(value, bool) or not isinstance(value, str | int):
        return "", f"label {field!r} must be a string or an integer, got {quoted(repr(value))}"
    label = str(value).strip()
    if not label or len(label) > MAX_LABEL_CHARS or "\n" in label:
        return "", f"the label must be one line of 1 to {MAX_LABEL_CHARS} characters: {quoted(label)}"
    return label, ""
