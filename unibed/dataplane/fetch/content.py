"""What a file must look like, by its name: an archive's magic bytes, text that is text.

A server that answers 200 with an HTML page (a login or error page) for
`train.zip` must not get that page staged as the archive. Two checks, both
before anything is staged: the server's Content-Type (text/html for an
archive is refused before a byte is fetched), and the first bytes of what
arrived. Names of any other kind (e.g. JPEG files of a folder layout) are not
checked here; their readers reject bad images one by one.
"""

from __future__ import annotations

import codecs
import dataclasses
from collections.abc import Callable

from unibed.dataplane.fetch.errors import WrongContentError

HEAD_BYTES = 512  # a tar header block: enough for every check


@dataclasses.dataclass(frozen=True)
class Kind:
    label: str
    archive: bool
    looks_right: Callable[[bytes], bool]


def _zip(head: bytes) -> bool:
    return head[:4] in (b"PK\x03\x04", b"PK\x05\x06")  # a first entry, or an empty archive


def _gzip(head: bytes) -> bool:
    return head[:2] == b"\x1f\x8b"


def _tar(head: bytes) -> bool:
    if len(head) < HEAD_BYTES:
        return False
    if head[257:262] == b"ustar":  # POSIX and GNU headers
        return True
    try:  # an old-style (v7) header: its checksum field must add up
        stored = int(head[148:156].rstrip(b"\0 ").decode("ascii") or "-1", 8)
    except ValueError:
        return False
    return stored == sum(head[:148]) + 8 * 32 + sum(head[156:512])


_BINARY = frozenset(range(32)) - {9, 10, 12, 13}  # control bytes no text file holds


def _text(head: bytes) -> bool:
    if _BINARY.intersection(head):
        return False
    try:  # incremental: a character cut at the end of the head is not an error
        text = codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        text = head.decode("latin-1")  # a legacy 8-bit CSV is still text
    start = text.lstrip("\ufeff \t\r\n").lower()
    return not start.startswith(("<!doctype", "<html", "<?xml"))


_KINDS = (
    ((".tar.gz", ".tgz", ".gz"), Kind("gzip archive (first bytes 1f 8b)", True, _gzip)),
    ((".zip",), Kind("zip archive (first bytes PK\\x03\\x04 or PK\\x05\\x06)", True, _zip)),
    ((".tar",), Kind("tar archive (ustar header or a valid tar header checksum)", True, _tar)),
    ((".csv", ".txt"), Kind("text file (no binary bytes, not an HTML or XML page)", False, _text)),
)


def kind_of(name: str) -> Kind | None:
    lower = name.lower()
    for suffixes, kind in _KINDS:
        if lower.endswith(suffixes):
            return kind
    return None


def check_content_type(url: str, name: str, content_type: str | None) -> None:
    """Refuse at once what the server itself says is a web page, for an archive."""
    kind = kind_of(name)
    if kind and kind.archive and content_type and content_type.split(";")[0].strip().lower() == "text/html":
        raise WrongContentError(f"{url}: expected a {kind.label} for {name}, the server sends "
                                f"Content-Type {content_type}; nothing was staged")


def check_head(url: str, name: str, head: bytes, content_type: str | None) -> None:
    """Refuse bytes that cannot begin the file `name` names."""
    kind = kind_of(name)
    if kind is None or kind.looks_right(head):
        return
    came = f"{content_type or 'no Content-Type'}, {len(head)} first bytes {head[:48]!r}"
    raise WrongContentError(f"{url}: expected a {kind.label} for {name}, got {came}; nothing was staged")


