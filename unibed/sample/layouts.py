"""Writes the catalog in each dataset's published layout (see docs/layouts.md)."""

from __future__ import annotations

import csv
import io

from unibed.dataplane import storage
from unibed.sample.archives import DigestWriter, tar_bytes, write_tar, write_zip
from unibed.sample.catalog import Catalog, SampleImage
from unibed.sample.identifiers import gldv2_photo_url

KAGGLE_DATA = ("ILSVRC", "Data", "CLS-LOC")


def layouts_holding(image: SampleImage) -> list[str]:
    """Names of the layouts whose files contain the image's bytes."""
    if image.data is None:
        return []
    match image.source:
        case "imagenet":
            if image.split == "train":
                return ["official_tar", "kaggle_folder"]
            return ["kaggle_folder"]
        case "products10k":
            return ["folder", "zip"]
        case _:
            return ["tars"]


def _csv(header: list[str], rows) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def write_imagenet(root: str, catalog: Catalog) -> None:
    classes = sorted(catalog.classes["imagenet"], key=lambda c: c.label)
    images = catalog.images_of("imagenet")
    train = [im for im in images if im.split == "train"]
    val = [im for im in images if im.split == "val"]
    storage.write_text(storage.join(root, "LOC_synset_mapping.txt"),
                       "".join(f"{c.label} {c.name}\n" for c in classes))

    # official: one tar of per-synset tars
    def synset_tar(wnid: str) -> bytes:
        return tar_bytes((f"{im.image_id}.JPEG", im.data) for im in train if im.label == wnid)

    with storage.open_write(storage.join(root, "ILSVRC2012_img_train.tar")) as f:
        write_tar(f, ((f"{c.label}.tar", synset_tar(c.label)) for c in classes))

    # Kaggle: folders per synset, a flat val folder and its solution file
    for im in train:
        path = storage.join(root, *KAGGLE_DATA, "train", im.label, f"{im.image_id}.JPEG")
        storage.write_bytes(path, im.data)
    for im in val:
        storage.write_bytes(storage.join(root, *KAGGLE_DATA, "val", f"{im.image_id}.JPEG"), im.data)
    # PredictionString: "wnid x_min y_min x_max y_max" per box, with the trailing space Kaggle's has
    rows = [(im.image_id, "".join(f"{im.label} {' '.join(map(str, box))} " for box in im.boxes))
            for im in val]
    storage.write_text(storage.join(root, "LOC_val_solution.csv"),
                       _csv(["ImageId", "PredictionString"], rows))


def write_products10k(root: str, catalog: Catalog) -> None:
    # file names are numbers; the published train.csv lists them in numeric order
    images = sorted(catalog.images_of("products10k"), key=lambda im: int(im.image_id.split(".")[0]))
    rows = [(im.image_id, im.label, catalog.class_of("products10k", im.label).group)
            for im in images]
    storage.write_text(storage.join(root, "train.csv"), _csv(["name", "class", "group"], rows))
    present = [im for im in images if im.data is not None]
    for im in present:
        storage.write_bytes(storage.join(root, "train", im.image_id), im.data)
    with storage.open_write(storage.join(root, "train.zip")) as f:
        # through a write-only stream, so a local file and a gs:// object get the same bytes
        write_zip(DigestWriter(f), ((f"train/{im.image_id}", im.data) for im in present))


def write_gldv2(root: str, catalog: Catalog, tar_count: int) -> None:
    images = catalog.images_of("gldv2")
    labelled = [im for im in images if im.label is not None]
    landmarks = sorted(catalog.classes["gldv2"], key=lambda c: int(c.label))
    urls = {c.label: c.category_url for c in landmarks}

    storage.write_text(storage.join(root, "train.csv"), _csv(
        ["id", "url", "landmark_id"],
        [(im.image_id, gldv2_photo_url(urls[im.label], im.image_id), im.label) for im in labelled]))
    clean_rows = []
    for c in landmarks:
        ids = [im.image_id for im in labelled if im.label == c.label and im.in_clean]
        if ids:
            clean_rows.append((c.label, " ".join(ids)))
    storage.write_text(storage.join(root, "train_clean.csv"),
                       _csv(["landmark_id", "images"], clean_rows))
    storage.write_text(storage.join(root, "train_label_to_category.csv"), _csv(
        ["landmark_id", "category"], [(c.label, c.category_url) for c in landmarks]))

    present = [im for im in images if im.data is not None]
    for index in range(tar_count):
        name = f"images_{index:03d}.tar"
        # ids are random hex, so dealing them out in id order spreads every prefix over the tars
        members = sorted((f"{im.image_id[0]}/{im.image_id[1]}/{im.image_id[2]}/{im.image_id}.jpg",
                          im.data) for im in present[index::tar_count])
        with storage.open_write(storage.join(root, name)) as f:
            digest = DigestWriter(f)
            write_tar(digest, members)
        storage.write_text(storage.join(root, f"md5.images_{index:03d}.txt"),
                           f"{digest.hexdigest()}  {name}\n")


def write_layouts(out_root: str, catalog: Catalog, gldv2_tars: int) -> None:
    write_imagenet(storage.join(out_root, "imagenet"), catalog)
    write_products10k(storage.join(out_root, "products10k"), catalog)
    write_gldv2(storage.join(out_root, "gldv2"), catalog, gldv2_tars)
