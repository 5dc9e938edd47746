"""Writes the extended sample's extra sources in their published layouts (docs/layouts.md)."""

from __future__ import annotations

import csv
import io

from unibed.dataplane import storage
from unibed.sample.extras_population import ExtraImage, Extras

SOP_HEADER = "image_id class_id super_class_id path"
SHOPEE_HEADER = ("posting_id", "image", "image_phash", "title", "label_group")


def _write_files(root: str, images: list[ExtraImage]) -> None:
    for image in images:
        if image.data is not None and image.image_id:
            storage.write_bytes(storage.join(root, image.image_id), image.data)


def write_sop(root: str, extras: Extras) -> None:
    """Ebay_train.txt / Ebay_test.txt (space-separated, with a header) and <super>_final/ folders."""
    images = extras.of("sop")
    for split, name in (("train", "Ebay_train.txt"), ("test", "Ebay_test.txt")):
        lines = [" ".join(im.row) for im in images if im.row and im.split == split]
        storage.write_text(storage.join(root, name), "\n".join([SOP_HEADER, *lines]) + "\n")
    _write_files(root, images)


def write_food101(root: str, extras: Extras) -> None:
    """meta/train.txt, meta/test.txt (`class/id` lines), meta/classes.txt,
    meta/labels.txt, images/<class>/<id>.jpg."""
    images = extras.of("food101")
    for split in ("train", "test"):
        lines = [im.row[0] for im in images if im.row and im.split == split]
        storage.write_text(storage.join(root, "meta", f"{split}.txt"), "".join(f"{line}\n" for line in lines))
    names = extras.class_names["food101"]
    storage.write_text(storage.join(root, "meta", "classes.txt"), "".join(f"{label}\n" for label in names))
    storage.write_text(storage.join(root, "meta", "labels.txt"), "".join(f"{name}\n" for name in names.values()))
    _write_files(root, images)


def write_shopee(root: str, extras: Extras) -> None:
    """train.csv (posting_id,image,image_phash,title,label_group) and train_images/."""
    images = extras.of("shopee")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(SHOPEE_HEADER)
    writer.writerows(im.row for im in images if im.row)
    storage.write_text(storage.join(root, "train.csv"), buffer.getvalue())
    _write_files(root, images)
