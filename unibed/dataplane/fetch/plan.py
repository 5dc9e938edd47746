"""What to fetch for each source: a list of FetchItems (URL -> name under the staging root).

GLDv2 comes from its public URLs (`GLDV2_URL`, a parameter so tests point it
at a local server whose paths mirror the published ones). Products-10K and
ImageNet need registration, so the user gives a base (http(s)://, gs:// or a
local folder) holding the files in their published layout; names may be globs
when the base is a bucket or folder (e.g. the Kaggle ImageNet tree).

A staging root is laid out the way the readers read it (docs/layouts.md),
whatever the URL layout: GLDv2's `train/images_000.tar` and
`md5sum/train/md5.images_000.txt` both land flat beside the CSVs.
"""

from __future__ import annotations

import dataclasses
import re

from unibed.dataplane import storage

GLDV2_URL = "https://s3.amazonaws.com/google-landmark"
GLDV2_TARS = 500
GLDV2_CSVS = ("train.csv", "train_clean.csv", "train_label_to_category.csv")
GLDV2_ATTRIBUTION = "train_attribution.csv"  # licences; no reader needs it

# Files each layout needs (docs/layouts.md "Which files a layout needs").
DEFAULT_FILES = {
    "products10k": ("train.csv", "train.zip"),
    "imagenet": ("ILSVRC2012_img_train.tar",),
    "imagenet/kaggle_folder": (
        "LOC_synset_mapping.txt",
        "LOC_val_solution.csv",
        "ILSVRC/Data/CLS-LOC/train/*/*",
        "ILSVRC/Data/CLS-LOC/val/*",
    ),
}
_MD5 = re.compile(r"[0-9a-f]{32}")
_GLOB = re.compile(r"[*?\[]")


@dataclasses.dataclass(frozen=True)
class FetchItem:
    """One file: where it comes from, its name under the staging root, and how to verify it.

    md5: the publisher's checksum, when known up front. md5_list: the name (under
    the same staging root) of a staged md5 list that holds this file's checksum;
    that list is fetched first. trust_etag: the server's ETag is the md5 of the
    bytes when it is 32 hex characters (S3 single-part uploads), used only when
    no md5 is published.
    """

    url: str
    name: str
    md5: str | None = None
    md5_list: str | None = None
    trust_etag: bool = False

    def __post_init__(self):
        if not self.name or self.name.startswith("/") or ".." in self.name.split("/"):
            raise ValueError(f"fetch item name must be a relative path, got {self.name!r}")
        if self.md5 is not None and not _MD5.fullmatch(self.md5):
            raise ValueError(f"{self.name}: md5 must be 32 lowercase hex characters, got {self.md5!r}")


def plan_gldv2(base_url: str = GLDV2_URL, tars: int | range = GLDV2_TARS,
               attribution: bool = False) -> list[FetchItem]:
    """The GLDv2 train files: CSVs, md5 lists and tars `images_000.tar` ... (`tars` = count or range)."""
    indices = range(tars) if isinstance(tars, int) else tars
    if not indices or indices.start < 0 or indices.stop > 1000:
        raise ValueError(f"gldv2 tars must be a non-empty range within 0..999, got {tars!r}")
    base = base_url.rstrip("/")
    csvs = (*GLDV2_CSVS, GLDV2_ATTRIBUTION) if attribution else GLDV2_CSVS
    items = [FetchItem(f"{base}/metadata/{name}", name, trust_etag=True) for name in csvs]
    for i in indices:
        md5_name = f"md5.images_{i:03d}.txt"
        items.append(FetchItem(f"{base}/md5sum/train/{md5_name}", md5_name, trust_etag=True))
        items.append(FetchItem(f"{base}/train/images_{i:03d}.tar", f"images_{i:03d}.tar",
                               md5_list=md5_name, trust_etag=True))
    return items


def plan_from_base(source: str, base: str, files: list[str] | None = None,
                   md5: dict[str, str] | None = None) -> list[FetchItem]:
    """Files under a user-supplied base, in the source's published layout.

    `files` defaults to what the source's reader needs (DEFAULT_FILES[source]);
    a glob is expanded by listing the base, so only a bucket or folder base may use one.
    `md5` ({name: hex}) is optional; without it a file is verified by size and
    the md5 computed while fetching is recorded for reruns.
    """
    if source not in DEFAULT_FILES:
        raise ValueError(f"unknown source {source!r}; expected one of {', '.join(DEFAULT_FILES)}")
    names: list[str] = []
    for name in files if files is not None else DEFAULT_FILES[source]:
        names.extend(_expand(base, name))
    md5 = {k: v.lower() for k, v in (md5 or {}).items()}
    unknown = sorted(set(md5) - set(names))
    if unknown:
        raise ValueError(f"md5 given for files not in the {source} file list: {', '.join(unknown)}")
    return [FetchItem(join_url(base, name), name, md5=md5.get(name)) for name in names]


def plan_sources(gldv2: str | None = GLDV2_URL, gldv2_tars: int = GLDV2_TARS, gldv2_attribution: bool = False,
                 products10k: str | None = None, products10k_files: list[str] | None = None,
                 imagenet: str | None = None, imagenet_files: list[str] | None = None,
                 md5: dict[str, dict[str, str]] | None = None) -> dict[str, list[FetchItem]]:
    """What to fetch, per source: a source is fetched when its base is given.
    `md5` = {source: {file name: md5 hex}}, for the sources without published lists."""
    md5 = md5 or {}
    unknown = set(md5) - {"products10k", "imagenet"}
    if unknown:
        raise ValueError(f"md5 can be given for products10k and imagenet only, not {sorted(unknown)}")
    plans: dict[str, list[FetchItem]] = {}
    if gldv2:
        plans["gldv2"] = plan_gldv2(gldv2, gldv2_tars, gldv2_attribution)
    for source, base, files in (("products10k", products10k, products10k_files),
                                ("imagenet", imagenet, imagenet_files)):
        if base:
            plans[source] = plan_from_base(source, base, files, md5.get(source))
    if not plans:
        raise ValueError("nothing to fetch: give gldv2_url, products10k_url or imagenet_url")
    return plans


def join_url(base: str, name: str) -> str:
    if base.startswith(("http://", "https://")):
        return f"{base.rstrip('/')}/{name}"
    return storage.join(base, name)


def _expand(base: str, name: str) -> list[str]:
    if not _GLOB.search(name):
        return [name]
    if base.startswith(("http://", "https://")):
        raise ValueError(f"{name!r}: an http(s) base cannot be listed; give file names, not a glob")
    root = storage.join(base, "")
    found = [path[len(root):] for path, _ in storage.list_files(storage.join(base, name))]
    if not found:
        raise ValueError(f"{storage.join(base, name)}: no files match")
    return found
