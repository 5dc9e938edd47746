"""storage.write_atomic: a reader sees the old file or the new one, and no
temporary file is left behind - on a local folder and on gs:// (a real local
GCS server, tests/gcs_emulator.py)."""

from __future__ import annotations

import pytest

from unibed.dataplane import storage

BUCKET = "unibed-atomic"


def _names(folder: str) -> list[str]:
    return [storage.basename(path) for path, _ in storage.list_files(storage.join(folder, "*"))]


def test_write_atomic_replaces_a_local_file_and_leaves_no_temporary(tmp_path):
    folder = str(tmp_path / "new" / "folder")  # parents are created
    target = storage.join(folder, "report.html")
    storage.write_atomic(target, b"old")
    storage.write_atomic(target, b"new contents")
    assert storage.read_bytes(target) == b"new contents"
    assert _names(folder) == ["report.html"]


def test_write_atomic_keeps_the_old_file_when_the_write_fails(tmp_path, monkeypatch):
    target = str(tmp_path / "cache.json")
    storage.write_atomic(target, b"old")

    def broken_rename(source: str, destination: str) -> None:
        raise OSError("rename failed")

    monkeypatch.setattr(storage, "rename", broken_rename)
    with pytest.raises(OSError, match="rename failed"):
        storage.write_atomic(target, b"new")
    assert storage.read_bytes(target) == b"old"
    assert _names(str(tmp_path)) == ["cache.json"]  # the temporary was discarded


def test_write_atomic_on_gcs_replaces_the_object_and_leaves_no_temporary(gcs_emulator):
    folder = f"{gcs_emulator.create_bucket(BUCKET)}/reports"
    target = f"{folder}/report.html"
    storage.write_atomic(target, b"old")
    storage.write_atomic(target, b"new contents")
    assert storage.read_bytes(target) == b"new contents"
    assert _names(folder) == ["report.html"]
