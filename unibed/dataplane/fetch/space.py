"""Room in a local staging folder for what the servers announce, checked before
the first byte is fetched (a full disk half-way through 500 GB helps nobody).
A bucket has no such limit; it is not checked."""

from __future__ import annotations

import os
import shutil

from unibed.dataplane import storage
from unibed.dataplane.fetch.errors import NotEnoughSpace
from unibed.dataplane.fetch.options import FetchOptions
from unibed.dataplane.fetch.workspace import Workspace


def ensure_room(root: str, todo: list[tuple[str, int]], options: FetchOptions) -> None:
    """todo: (staged name, announced size) of each file about to be fetched."""
    if storage.is_remote(root) or not todo:
        return
    left = sum(max(0, size - Workspace(root, name).parts_bytes()) for name, size in todo)
    # joining a file of several parts copies it once more, on up to `workers` files at a time
    joins = sorted((size for _, size in todo if size > options.part_size), reverse=True)
    need = left + sum(joins[:options.workers]) + options.free_space_margin
    free = shutil.disk_usage(_existing(root)).free
    if need > free:
        raise NotEnoughSpace(
            f"{root}: not enough free space: {len(todo)} file(s) to fetch announce {_gb(left)} GB still "
            f"to download; with room to join parts and a margin of {_gb(options.free_space_margin)} GB "
            f"that needs {_gb(need)} GB, and {_gb(free)} GB are free. Free some space or stage elsewhere")


def _existing(path: str) -> str:
    """The folder itself or its nearest existing parent (the staging root may not exist yet)."""
    path = os.path.abspath(path)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    return path


def _gb(size: int) -> str:
    return f"{size / 1e9:.3f}"
