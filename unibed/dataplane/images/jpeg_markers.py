"""Reading a JPEG's marker segments (ITU T.81 annex B) without decoding it.

Two walks over the same structure, for two jobs:
- `jpeg_without_metadata`: strict. It rebuilds the file minus its metadata, so it gives up
  (None) on anything it does not fully understand.
- `count_markers`: lenient, as libjpeg's marker reader is. It bounds decoding work before
  decoding, so it must never count fewer scans than libjpeg would decode.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

JPEG_START = b"\xff\xd8\xff"  # SOI and the next marker: how Pillow recognises a JPEG
_SOI, _EOI_BYTES = b"\xff\xd8", b"\xff\xd9"
_EOI, _SOS, _COM = 0xD9, 0xDA, 0xFE
_STORABLE_FRAMES = {0xC0, 0xC2}  # SOF0 baseline, SOF2 progressive (Huffman, 8-bit)
_FRAMES = set(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # every SOFn
_STANDALONE = {0x00, 0x01, *range(0xD0, 0xD9), 0xFF}  # no length field (or not a marker)
_APPS = range(0xE0, 0xF0)
# The two APPn segments that steer decoding (the colour transform libjpeg assumes).
_DECODING_APPS = ((0xE0, b"JFIF\x00"), (0xEE, b"Adobe"))
# The end of entropy-coded data (at the match's start): a 0xFF that is not a stuffed 0xFF00,
# a restart marker (part of the data) or a fill byte before the next marker. (A lookahead
# instead of the second byte is 1.5 times slower.)
_MARKER_AFTER_SCAN = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
# The next marker as libjpeg's next_marker() finds it: any bytes up to a 0xFF are skipped
# (with a warning, not an error), so are fill 0xFFs and a 0xFF00 pair.
_NEXT_MARKER = re.compile(rb"\xff+([^\x00\xff])")


@dataclass(frozen=True, slots=True)
class MarkerCounts:
    scans: int  # start-of-scan segments
    markers: int  # every marker, scans included
    header_skipped: int  # fill and garbage bytes before the first scan


def count_markers(data: bytes, max_scans: int, max_markers: int) -> MarkerCounts:
    """The markers of the first image of the JPEG `data`, counted until either count
    passes its maximum (the walk stops there: a hostile file may hold millions).

    libjpeg decodes every scan, each a pass over every block of its components, even a
    scan with no data: so a small file of thousands of scans costs minutes. Every marker
    costs a Python loop turn here and in Pillow's header parser, and so does every byte
    that parser skips before the first scan. Counted as libjpeg reads: markers found past
    garbage, segments skipped by their length, the entropy-coded data after a SOS skipped
    up to the next marker that is not a restart; up to EOI or the end of the data (a
    truncated file is decoded up to there, too). A marker libjpeg fails at is walked past,
    so no count is below libjpeg's."""
    scans, markers, skipped, pos = 0, 0, 0, len(_SOI)
    while scans <= max_scans and markers <= max_markers:
        found = _NEXT_MARKER.search(data, pos)
        if found is None or found[1][0] == _EOI:
            break
        if not scans:  # garbage up to the marker, fill bytes before its last 0xFF
            skipped += found.end() - 2 - pos
        marker, pos, markers = found[1][0], found.end(), markers + 1
        if marker in _STANDALONE:  # RSTn, TEM, a repeated SOI: nothing to skip
            continue
        # A length below 2 skips only itself: libjpeg goes on after it (APPn, COM).
        pos += max(int.from_bytes(data[pos:pos + 2], "big"), 2)
        if marker == _SOS:
            scans += 1
            after_scan = _MARKER_AFTER_SCAN.search(data, pos)
            if after_scan is None:
                break
            pos = after_scan.start()
    return MarkerCounts(scans, markers, skipped)


def jpeg_without_metadata(data: bytes) -> bytes | None:
    """The JPEG `data` without its APPn segments (but JFIF's APP0 and Adobe's APP14, which
    steer decoding), COM segments and anything after EOI: it decodes to the same pixels.
    None unless `data` is one well-formed baseline or progressive frame."""
    if not data.startswith(_SOI):
        return None
    kept, pos, frames, scans = [_SOI], len(_SOI), 0, 0
    while pos + 2 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker == _EOI:
            return b"".join(kept) + _EOI_BYTES if scans else None
        end = _segment_end(data, pos)
        if marker in _STANDALONE or end is None:
            return None
        if marker in _FRAMES:
            frames += 1
            if frames > 1 or marker not in _STORABLE_FRAMES:
                return None
        if not _is_metadata(data, pos, marker):
            kept.append(data[pos:end])
        pos = end
        if marker == _SOS:  # entropy-coded data follows, up to the next marker
            after_scan = _MARKER_AFTER_SCAN.search(data, pos)
            if not frames or after_scan is None:
                return None
            kept.append(data[pos:after_scan.start()])
            pos, scans = after_scan.start(), scans + 1
    return None


def _segment_end(data: bytes, pos: int) -> int | None:
    """Where the segment at `pos` ends (its 2-byte length counts itself, not the marker)."""
    length = int.from_bytes(data[pos + 2:pos + 4], "big")
    end = pos + 2 + length
    return end if length >= 2 and end <= len(data) else None


def _is_metadata(data: bytes, pos: int, marker: int) -> bool:
    """APPn segments, but JFIF's APP0 and Adobe's APP14, and COM segments."""
    if marker in _APPS:
        return not any(marker == app and data.startswith(tag, pos + 4)
                       for app, tag in _DECODING_APPS)
    return marker == _COM
