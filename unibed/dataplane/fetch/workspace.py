"""The fetch's own files under a staging root, kept apart from what readers read.

    <root>/<name>                          staged file: only ever renamed here after verification
    <root>/.fetch/parts/<name>/source.json the remote version the parts belong to (url, size, etag, part size)
    <root>/.fetch/parts/<name>/000000 ...  complete parts, each written under a temporary name first
    <root>/.fetch/incoming/<name>          the parts joined, before the rename
    <root>/.fetch/verified/<name>.json     url, size, ETag, md5 and where the md5 came from, written after the rename

Every location goes through unibed/dataplane/storage.py, so a gs:// staging root is the
same code: GCS cannot append, hence fixed-size parts that are each one object,
and joining by compose (storage.concatenate). The readers list only their
own names (`images_*.tar`, `train/**`, ...), so `.fetch/` never looks like data.
"""

from __future__ import annotations

import json
import uuid

from unibed.dataplane import storage

WORK_DIR = ".fetch"


class Workspace:
    def __init__(self, root: str, name: str):
        self.root, self.name = root, name
        self.dest = storage.join(root, name)
        self.parts_dir = storage.join(root, WORK_DIR, "parts", name)
        self.incoming = storage.join(root, WORK_DIR, "incoming", name)
        self.record_path = storage.join(root, WORK_DIR, "verified", f"{name}.json")

    # --- the verification record -------------------------------------------------
    def read_record(self) -> dict | None:
        if not storage.exists(self.record_path):
            return None
        try:
            return json.loads(storage.read_text(self.record_path))
        except ValueError:
            return None  # a torn record proves nothing: verify again

    def write_record(self, record: dict) -> None:
        storage.make_parent(self.record_path)  # before open_write: workers share folders
        storage.write_text(self.record_path, json.dumps(record, sort_keys=True) + "\n")

    def drop_record(self) -> None:
        if storage.exists(self.record_path):
            storage.delete([self.record_path])

    # --- parts --------------------------------------------------------------------
    def part_path(self, index: int) -> str:
        return storage.join(self.parts_dir, f"{index:06d}")

    def open_parts(self, source: dict) -> dict[int, int]:
        """Complete parts {index: size} left by an earlier run of the same remote
        version; anything else there (another version, temporaries) is removed."""
        state_path = storage.join(self.parts_dir, "source.json")
        if storage.exists(state_path):
            try:
                same = json.loads(storage.read_text(state_path)) == source
            except ValueError:
                same = False
            if not same:
                self.drop_parts()
        found: dict[int, int] = {}
        stale = []
        for path, size in self._files(self.parts_dir):
            leaf = storage.basename(path)
            if leaf.isdigit():
                found[int(leaf)] = size
            elif leaf != "source.json":
                stale.append(path)  # a temporary of an interrupted write
        storage.delete(stale)
        storage.make_parent(state_path)
        storage.write_text(state_path, json.dumps(source, sort_keys=True))
        return found

    def write_part(self, index: int, expected: int, fill) -> None:
        """`fill(writer)` writes the part; it becomes visible only when complete."""
        final = self.part_path(index)
        temporary = f"{final}.tmp-{uuid.uuid4().hex[:8]}"
        try:
            with storage.open_write(temporary) as f:
                fill(f)
            written = storage.size(temporary)
            if written != expected:
                raise OSError(f"{final}: wrote {written} bytes, expected {expected}")
            storage.rename(temporary, final)
        finally:
            if storage.exists(temporary):
                storage.delete([temporary])

    def read_head(self, count: int, size: int) -> bytes:
        """The first `size` bytes of the file the `count` complete parts make up."""
        head = b""
        for index in range(count):
            if len(head) >= size:
                break
            with storage.open_read(self.part_path(index)) as f:
                head += f.read(size - len(head))
        return head

    def parts_bytes(self) -> int:
        """Bytes already in complete parts (a resumed fetch needs room for the rest only)."""
        return sum(size for path, size in self._files(self.parts_dir) if storage.basename(path).isdigit())

    def drop_parts(self) -> None:
        storage.delete_tree(self.parts_dir)

    # --- joining and publishing ---------------------------------------------------
    def assemble(self, count: int) -> None:
        if count == 1:  # most files are one part: a rename, no copy
            storage.make_parent(self.incoming)
            storage.rename(self.part_path(0), self.incoming)
            return
        storage.make_parent(self.incoming)
        storage.concatenate([self.part_path(i) for i in range(count)], self.incoming)

    def publish(self) -> None:
        """Rename the verified incoming file to its final name (a local rename is
        atomic; a GCS rename is a copy, also atomic per object)."""
        storage.make_parent(self.dest)  # a local rename does not create folders
        storage.rename(self.incoming, self.dest)

    def drop_incoming(self) -> None:
        if storage.exists(self.incoming):
            storage.delete([self.incoming])

    @staticmethod
    def _files(folder: str) -> list[tuple[str, int]]:
        if not storage.is_remote(folder) and not storage.exists(folder):
            return []
        return storage.list_files(storage.join(folder, "*"))
