"""Full-size metadata without images: the published layouts with the real
datasets' class counts, so `unibed plan` can be checked on the label space it
must produce (17,691 classes) without 200 GB of images.

ImageNet: an official train tar of 1,000 empty synset tars. Products-10K:
train.csv over 9,691 classes and a train.zip of empty members. GLDv2: train.csv,
train_clean.csv and categories over `gldv2_landmarks` landmarks with
heavy-tailed image counts, and one empty images tar. Image bytes are empty,
so this is for planning only; a build would reject every image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from unibed.dataplane import storage
from unibed.sample.archives import tar_bytes, write_tar, write_zip


@dataclass(frozen=True)
class FullMetadataConfig:
    seed: int = 0
    imagenet_classes: int = 1000
    products_classes: int = 9691
    products_images: int = 141_931  # the published train.csv's rows
    gldv2_landmarks: int = 81_313  # GLDv2-clean
    gldv2_clean_images: int = 1_580_470
    gldv2_extra_images: int = 0  # listed in train.csv but not in the clean subset


def _counts(rng: np.random.Generator, classes: int, images: int, minimum: int = 1) -> np.ndarray:
    """Heavy-tailed per-class counts (landmark datasets are Zipf-like), each at
    least `minimum`, adding up to exactly `images`."""
    spare = images - minimum * classes
    if spare < 0:
        raise ValueError(f"{images} images cannot give {classes} classes {minimum} each")
    weights = rng.pareto(1.2, classes) + 1.0
    counts = minimum + np.floor(weights / weights.sum() * spare).astype(np.int64)
    counts[np.argmax(weights)] += images - counts.sum()
    return counts


def write_full_metadata(root: str, config: FullMetadataConfig = FullMetadataConfig()) -> dict:
    rng = np.random.default_rng(config.seed)
    wnids = [f"n{n:08d}" for n in sorted(rng.choice(10**7, config.imagenet_classes, replace=False) + 10**7)]
    with storage.open_write(storage.join(root, "imagenet", "ILSVRC2012_img_train.tar")) as f:
        write_tar(f, ((f"{w}.tar", tar_bytes(())) for w in wnids))

    product_counts = _counts(rng, config.products_classes, config.products_images)
    names = [f"{i}.jpg" for i in range(config.products_images)]
    rows, start = ["name,class,group"], 0
    for cls, n in enumerate(product_counts):
        rows += [f"{name},{cls},{cls // 100}" for name in names[start : start + n]]
        start += n
    storage.write_text(storage.join(root, "products10k", "train.csv"), "\n".join(rows) + "\n")
    with storage.open_write(storage.join(root, "products10k", "train.zip")) as f:
        write_zip(f, ((f"train/{name}", b"") for name in names))

    landmark_ids = np.sort(rng.choice(203_094, config.gldv2_landmarks, replace=False))
    clean_counts = _counts(rng, config.gldv2_landmarks, config.gldv2_clean_images)
    total = config.gldv2_clean_images + config.gldv2_extra_images
    ids = [f"{x:016x}" for x in rng.integers(0, 2**63, total, dtype=np.int64)]
    train, clean, start = ["id,url,landmark_id"], ["landmark_id,images"], 0
    for landmark, n in zip(landmark_ids, clean_counts):
        members = ids[start : start + n]
        train += [f"{i},https://upload.wikimedia.org/{i}.jpg,{landmark}" for i in members]
        clean.append(f"{landmark},{' '.join(members)}")
        start += n
    train += [f"{i},https://upload.wikimedia.org/{i}.jpg,{landmark_ids[0]}" for i in ids[start:]]
    gld = storage.join(root, "gldv2")
    storage.write_text(storage.join(gld, "train.csv"), "\n".join(train) + "\n")
    storage.write_text(storage.join(gld, "train_clean.csv"), "\n".join(clean) + "\n")
    categories = ["landmark_id,category"] + [
        f"{lm},http://commons.wikimedia.org/wiki/Category:Landmark_{lm}" for lm in landmark_ids
    ]
    storage.write_text(storage.join(gld, "train_label_to_category.csv"), "\n".join(categories) + "\n")
    with storage.open_write(storage.join(gld, "images_000.tar")) as f:
        write_tar(f, ())
    return {"imagenet": len(wnids), "products10k": len(product_counts), "gldv2": len(landmark_ids)}
