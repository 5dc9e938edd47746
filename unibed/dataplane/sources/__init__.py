"""The dataset readers, by name, and reading one image back from its Location.

    index = open_index("gldv2", "gs://bucket/gldv2")
    index = open_source(recipe.source("shopee"))  # a recipe's source, whatever its reader
    for item in iter_source(index): ...          # locally, every unit in order
    read_unit(unit, index, max_input_bytes)      # one unit, e.g. inside a Beam DoFn

Each reader module has LAYOUTS, open_index and read_unit(unit, index,
max_input_bytes); the seed readers' open_index(root, layout=None) serve the
source of their own name, the generic ones' open_index(source, root, options,
layout=None) any source, and the named sources (sop, food101, shopee) are
presets of the listing reader (named.py). See base.py for the contract and
docs/layouts.md for the layouts and the bad-metadata policy.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from unibed.dataplane import storage
from unibed.dataplane.sources import (
    base,
    gldv2,
    imagefolder,
    imagenet,
    listing,
    parquet,
    products10k,
    webdataset,
)
from unibed.dataplane.sources.archives import open_zip
from unibed.dataplane.sources.base import DEFAULT_MAX_INPUT_BYTES, ReadItem, ReadUnit, SourceIndex
from unibed.dataplane.sources.named import PRESETS
from unibed.schemas.reader_specs import SEED_READERS
from unibed.schemas.recipe import SourceSpec
from unibed.schemas.source_record import Location, LocationKind, SourceImage

GENERIC = {"imagefolder": imagefolder, "listing": listing, "webdataset": webdataset, "parquet": parquet}
READERS = {"imagenet": imagenet, "products10k": products10k, "gldv2": gldv2, **GENERIC,
           **dict.fromkeys(PRESETS, listing)}


def _reader(name: str):
    if name not in READERS:
        raise ValueError(f"unknown source {name!r}; expected one of {', '.join(READERS)}")
    return READERS[name]


def open_index(
    source: str, root: str, layout: str | None = None, reader: str | None = None, options=None
) -> SourceIndex:
    """The source's metadata at `root` (layout auto-detected when None), read by
    `reader` (default: the reader named like the source) with a generic
    reader's `options` (its recipe block; a named source's preset when None)."""
    reader = reader or source
    module = _reader(reader)
    if reader in SEED_READERS:
        return module.open_index(root, layout)
    if options is None:
        options = PRESETS[reader] if reader in PRESETS else SourceSpec(
            name=source, reader=reader, location=root).reader_options()
    return module.open_index(source, root, options, layout)


def open_source(spec: SourceSpec) -> SourceIndex:
    """A recipe source's metadata, through the reader and options it names."""
    return open_index(spec.name, spec.location, spec.layout, spec.reader_name, spec.reader_options())


def _reader_of(index: SourceIndex):
    return _reader(index.reader or index.source)


def read_unit(
    unit: ReadUnit, index: SourceIndex, max_input_bytes: int = DEFAULT_MAX_INPUT_BYTES
) -> Iterator[ReadItem]:
    return _reader_of(index).read_unit(unit, index, max_input_bytes)


def iter_source(
    index: SourceIndex, max_input_bytes: int = DEFAULT_MAX_INPUT_BYTES
) -> Iterator[ReadItem]:
    """Every input of the source, accounted for (see base.iter_source)."""
    return base.iter_source(index, _reader_of(index).read_unit, max_input_bytes)


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


def read_location(location: Location, index: SourceIndex | None = None) -> bytes:
    """The bytes of one image, exactly as its reader yielded them (a Parquet
    row needs its source's index, which names the columns)."""
    if location.kind is LocationKind.PARQUET_ROW:
        return parquet.read_row(location, index.options)
    if location.kind is LocationKind.FILE:
        return storage.read_bytes(location.uri)
    if location.kind is LocationKind.TAR_MEMBER:
        return storage.read_range(location.uri, location.offset, location.size)
    with storage.open_read(location.uri) as raw:
        archive, _ = open_zip(raw, location.uri)
        with archive:
            return archive.read(location.members[0])
