"""How a recipe configures the generic readers (unibed/dataplane/sources/):
`imagefolder`, `listing`, `webdataset` and `parquet`, and the names of every
reader a source may use.

A source names its reader (`reader:`); the seed datasets' readers and the
named sources (Stanford Online Products, Food-101, Shopee) need no options,
the generic ones take theirs from the block of the same name:

    - name: my_products
      reader: listing
      location: gs://bucket/my_products
      listing: {files: {train: labels.tsv}, separator: "\\t", path_column: file,
                label_column: sku, path_prefix: images/}

Paths inside a block are relative to the source's location.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    model_validator,
)
from pydantic_core import PydanticCustomError

from unibed.schemas.source_record import SOURCE_NAME  # noqa: F401 - the recipe checks names with it

SEED_READERS = ("imagenet", "products10k", "gldv2")
GENERIC_READERS = ("imagefolder", "listing", "webdataset", "parquet")
NAMED_READERS = ("sop", "food101", "shopee")  # thin configurations of `listing`
READERS = SEED_READERS + GENERIC_READERS + NAMED_READERS
ReaderName = Literal[
    "imagenet", "products10k", "gldv2", "imagefolder", "listing", "webdataset", "parquet",
    "sop", "food101", "shopee",
]


def _relative_path(value: str) -> str:
    """A path inside the source's root: never absolute, never through '..'."""
    parts = value.replace("\\", "/").split("/")
    if value.startswith(("/", "\\")) or ".." in parts or re.match(r"[A-Za-z]:", value):
        raise ValueError(f"must be a path inside the source's location, got {value!r}")
    return value


RelativePath = Annotated[str, AfterValidator(_relative_path)]
def _not_a_boolean(value):
    """YAML reads yes/no/on/off as booleans, and pydantic would take true for column 1."""
    if isinstance(value, bool):
        raise PydanticCustomError("column_type", "must be a column name or a 0-based position, got the "
                                  "boolean {value}", {"value": str(value).lower()})
    return value


# a column: its name when the file has a header, else its 0-based position
Column = Annotated[str | Annotated[int, Field(ge=0)], BeforeValidator(_not_a_boolean)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ImageFolderSpec(_Strict):
    """ROOT/<class>/<image>, or ROOT/<split>/<class>/<image> with these split folders."""

    split_folders: tuple[str, ...] = ("train", "val", "validation", "test")


class ListingSpec(_Strict):
    """A CSV, TSV or whitespace-separated text naming each image's path and label."""

    files: dict[str, RelativePath] = Field(min_length=1)  # the source's split -> its listing file
    separator: Literal[",", "\t", ";", "|", "whitespace"] = ","
    header: StrictBool = True  # False: columns are 0-based positions
    path_column: Column
    label_column: Column | None = None  # None: the label is the listed path's first folder
    name_column: Column | None = None  # a class's name: this column of its first row
    path_prefix: str = ""  # put before every listed path (e.g. images/)
    path_suffix: str = ""  # put after it (e.g. .jpg where the listing has no extension)
    # a zip or tar (in the root) holding the images; None: they are files under the root
    archive: RelativePath | None = None
    # class names from two parallel line lists: labels (e.g. meta/classes.txt) and names
    class_list: RelativePath | None = None
    class_names: RelativePath | None = None

    @model_validator(mode="after")
    def _consistent(self):
        columns = (self.path_column, self.label_column, self.name_column)
        if not self.header and any(isinstance(c, str) for c in columns):
            raise ValueError("without a header, columns are 0-based positions")
        if (self.class_list is None) != (self.class_names is None):
            raise ValueError("class_list and class_names come together")
        if self.archive is not None and not self.archive.endswith((".zip", ".tar")):
            raise ValueError(f"archive must be a .zip or .tar, got {self.archive!r}")
        return self


class WebDatasetSpec(_Strict):
    """Tar shards of KEY.jpg|png|webp + KEY.cls or KEY.json (what img2dataset writes)."""

    shards: str = "*.tar"  # a glob under the root
    label_field: str | None = None  # None: KEY.cls holds the label; else this KEY.json field


class ParquetSpec(_Strict):
    """Parquet files with the image bytes and a label column (img2dataset,
    Hugging Face datasets: an Image column is a struct whose `bytes` is read)."""

    files: str = "*.parquet"  # a glob under the root
    image_column: str = "image"
    label_column: str = "label"
    id_column: str | None = None  # None: the id is <file name>:<row>


READER_BLOCKS = {"imagefolder": ImageFolderSpec, "listing": ListingSpec,
                 "webdataset": WebDatasetSpec, "parquet": ParquetSpec}
