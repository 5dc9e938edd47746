"""Generic image-folder reader: ROOT/<class>/<image> (layout `flat`, the
torchvision ImageFolder / Keras image_dataset_from_directory convention), or
ROOT/<split>/<class>/<image> (layout `split`) when every top-level folder
holding images is one of the recipe's `imagefolder.split_folders` (train,
val, validation, test by default). Label = the class folder's name, which is
also the class name; image id = the path under the root; split = the split
folder (`flat`: train).

The folder listing is the metadata (`index.listed`), so an image is never
missing. Bad metadata policy (docs/layouts.md):
- no image files under the root -> SourceLayoutError;
- an image not directly inside a class folder (at the root, deeper, or in a
  top-level folder that is no split folder of a `split` layout) -> UNLABELLED_IMAGE;
- a file name that is not UTF-8 -> MALFORMED_NAME, the bytes shown escaped;
- a file over max_input_bytes -> TOO_LARGE, never read;
- files that are not images by extension (READMEs, .DS_Store) are no inputs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from unibed.dataplane import storage
from unibed.dataplane.sources.base import (
    DEFAULT_MAX_INPUT_BYTES,
    ClassInfo,
    ReadItem,
    ReadUnit,
    SourceIndex,
)
from unibed.dataplane.sources.common import (
    batched,
    check_layout,
    is_image_name,
    no_layout_found,
    read_file_batch,
    relative_to,
    unnamed_file,
)
from unibed.schemas.reader_specs import ImageFolderSpec
from unibed.schemas.source_record import Rejection, RejectReason

LAYOUTS = ("flat", "split")
FILES_PER_UNIT = 1000


def open_index(source: str, root: str, spec: ImageFolderSpec, layout: str | None = None) -> SourceIndex:
    files = [path for path, _ in storage.list_files(storage.join(root, "**"))]
    images = [(relative_to(root, path), path) for path in files if is_image_name(path)]
    if not images:
        raise no_layout_found(source, root, {"flat": "<class>/<image>", "split": "<split>/<class>/<image>"})
    layout = layout or _detect(images, spec)
    check_layout(source, layout, LAYOUTS, root)
    depth = 2 if layout == "flat" else 3
    listed, splits, rejections = {}, {}, []
    for name, path in images:
        parts = name.split("/")
        if bad_name := unnamed_file(source, path, _same):
            rejections.append(bad_name)
        elif len(parts) != depth or (layout == "split" and parts[0] not in spec.split_folders):
            expected = "<class>/<image>" if layout == "flat" else "<split>/<class>/<image>"
            detail = f"not inside a class folder: {name!r} (the {layout} layout is {expected})"
            rejections.append(Rejection(source, name, RejectReason.UNLABELLED_IMAGE, detail, path))
        else:
            listed[name] = parts[-2]
            splits[name] = parts[0] if layout == "split" else "train"
    counts = Counter(listed.values())
    classes = {label: ClassInfo(label, label, counts[label]) for label in sorted(counts)}
    units = [ReadUnit(source, "files", root, items=batch) for batch in batched(list(listed), FILES_PER_UNIT)]
    return SourceIndex(source, layout, root, classes, units, listed=listed, splits=splits,
                       rejections=rejections, reader="imagefolder")


def read_unit(
    unit: ReadUnit, index: SourceIndex, max_input_bytes: int = DEFAULT_MAX_INPUT_BYTES
) -> Iterator[ReadItem]:
    return read_file_batch(unit, index, _same, max_input_bytes)


def _same(name: str) -> str:
    return name


def _detect(images: list[tuple[str, str]], spec: ImageFolderSpec) -> str:
    """`split` when every top-level folder holding images is a split folder."""
    tops = {name.split("/", 1)[0] for name, _ in images if "/" in name}
    return "split" if tops and tops <= set(spec.split_folders) else "flat"
