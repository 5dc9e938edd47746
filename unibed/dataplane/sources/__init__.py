"""The dataset readers, by source name, and reading one image back from its Location.

    index = open_index("gldv2", "gs://bucket/gldv2")
    for item in iter_source(index): ...          # locally, every unit in order
    read_unit(unit, index, max_input_bytes)      # one unit, e.g. inside a Beam DoFn

Each reader module has LAYOUTS, open_index(root, layout=None) and
read_unit(unit, index, max_input_bytes); see unibed/dataplane/sources/base.py for the contract and
docs/layouts.md for the layouts and the bad-metadata policy.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from unibed.dataplane import storage
from unibed.dataplane.sources import base, gldv2, imagenet, products10k
from unibed.dataplane.sources.archives import open_zip
from unibed.dataplane.sources.base import DEFAULT_MAX_INPUT_BYTES, ReadItem, ReadUnit, SourceIndex
from unibed.schemas.source_record import Location, LocationKind, SourceImage

READERS = {"imagenet": imagenet, "products10k": products10k, "gldv2": gldv2}


def _reader(source: str):
    if source not in READERS:
        raise ValueError(f"unknown source {source!r}; expected one of {', '.join(READERS)}")
    return READERS[source]


def open_index(source: str, root: str, layout: str | None = None) -> SourceIndex:
    """The source's metadata at `root` (layout auto-detected when None)."""
    return _reader(source).open_index(root, layout)


def read_unit(
    unit: ReadUnit, index: SourceIndex, max_input_bytes: int = DEFAULT_MAX_INPUT_BYTES
) -> Iterator[ReadItem]:
    return _reader(unit.source).read_unit(unit, index, max_input_bytes)


def iter_source(
    index: SourceIndex, max_input_bytes: int = DEFAULT_MAX_INPUT_BYTES
) -> Iterator[ReadItem]:
    """Every input of the source, accounted for (see base.iter_source)."""
    return base.iter_source(index, _reader(index.source).read_unit, max_input_bytes)


def find_images(index: SourceIndex, keys: set[str], deadline: float | None = None) -> Iterator[SourceImage]:
    """The images of `keys` ('source/image_id'), streamed unit by unit until all
    were seen or time.monotonic() passes `deadline`. Images a build dropped live
    only in the sources; a full-size source is terabytes, hence the deadline."""
    pending = set(keys)
    for unit in index.units:
        for item in read_unit(unit, index):
            if isinstance(item, SourceImage) and item.record.key in pending:
                pending.discard(item.record.key)
                yield item
        if not pending or (deadline is not None and time.monotonic() > deadline):
            return


def read_location(location: Location) -> bytes:
    """The bytes of one image, exactly as its reader yielded them."""
    if location.kind is LocationKind.FILE:
        return storage.read_bytes(location.uri)
    if location.kind is LocationKind.TAR_MEMBER:
        return storage.read_range(location.uri, location.offset, location.size)
    with storage.open_read(location.uri) as raw:
        archive, _ = open_zip(raw, location.uri)
        with archive:
            return archive.read(location.members[0])
