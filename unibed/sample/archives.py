"""Byte-reproducible tar and zip writing onto a write-only stream (local file or gs:// upload)."""

from __future__ import annotations

import hashlib
import io
import tarfile
import zipfile
from collections.abc import Iterable
from typing import BinaryIO

# Fixed metadata, so the same members always give the same archive bytes.
TAR_MTIME = 1_336_000_000  # May 2012, when ILSVRC2012 was packed
ZIP_DATE_TIME = (2020, 3, 1, 12, 0, 0)

Members = Iterable[tuple[str, bytes]]  # (member name, bytes), already in archive order


class DigestWriter:
    """Passes writes through while computing their md5.

    It offers no seek() or tell(), so zipfile and tarfile always write in
    streaming form and a local file and a gs:// object get the same bytes.
    """

    def __init__(self, raw: BinaryIO):
        self._raw = raw
        self._md5 = hashlib.md5()

    def write(self, data: bytes) -> int:
        self._md5.update(data)
        return self._raw.write(data)

    def flush(self) -> None:
        self._raw.flush()

    def hexdigest(self) -> str:
        return self._md5.hexdigest()


def write_tar(stream: BinaryIO, members: Members) -> None:
    with tarfile.open(fileobj=stream, mode="w|", format=tarfile.GNU_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), TAR_MTIME, 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))


def tar_bytes(members: Members) -> bytes:
    buffer = io.BytesIO()
    write_tar(buffer, members)
    return buffer.getvalue()


def write_zip(stream: BinaryIO, members: Members) -> None:
    with zipfile.ZipFile(stream, "w") as archive:
        for name, data in members:
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE_TIME)
            info.create_system = 3  # unix, whatever platform writes it
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
