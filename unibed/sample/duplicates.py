"""Planted duplicates: exact and near copies of ordinary images, within and across sources."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from PIL import Image

from unibed.dataplane.images.preprocess import ProcessedImage, preprocess
from unibed.dataplane.images.robust_hashes import IDENTITY, rules_from
from unibed.sample.catalog import Catalog, DuplicateGroup, SampleImage
from unibed.sample.edits import EDITS
from unibed.sample.encoding import decode_rgb, encode_jpeg
from unibed.sample.identifiers import Identifiers
from unibed.sample.phash import (
    NEAR_DUPLICATE_MAX_DISTANCE,
    PerceptualSpacing,
    distance,
    hashes_of,
    probes_of,
)
from unibed.sample.seeding import rng_for
from unibed.schemas.recipe import DedupSpec, ImageSpec

IDENTICAL = "identical"


def _scaled(image: Image.Image, factor: float) -> bytes:
    size = round(image.width * factor), round(image.height * factor)
    return encode_jpeg(image.resize(size, Image.Resampling.LANCZOS))


def _cropped(image: Image.Image, fraction: float) -> bytes:
    dx, dy = round(image.width * fraction), round(image.height * fraction)
    return encode_jpeg(image.crop((dx, dy, image.width - dx, image.height - dy)))


# Transforms that keep the pHash within NEAR_DUPLICATE_MAX_DISTANCE of the original
# (checked for every copy): what re-uploads, thumbnails and light edits do.
NEAR_TRANSFORMS: dict[str, Callable[[Image.Image], bytes]] = {
    "reencode_q60": lambda image: encode_jpeg(image, quality=60),
    "resize_0.6": lambda image: _scaled(image, 0.6),
    "resize_0.4": lambda image: _scaled(image, 0.4),
    "crop_3pct": lambda image: _cropped(image, 0.03),
    "brightness_+8": lambda image: encode_jpeg(image.point(lambda v: min(255, v + 8))),
}


@dataclass(frozen=True)
class Copy:
    source: str
    label: str  # "same": the original's label; "other": another class of the same source;
    #             "any": any class of `source`


@dataclass(frozen=True)
class Plan:
    transform: str
    source: str  # where the original comes from
    copies: tuple[Copy, ...]


PLANS = (
    Plan(IDENTICAL, "imagenet", (Copy("imagenet", "same"),)),
    Plan(IDENTICAL, "products10k", (Copy("products10k", "other"),)),
    Plan(IDENTICAL, "imagenet", (Copy("products10k", "any"), Copy("gldv2", "any"))),
    Plan(IDENTICAL, "gldv2", (Copy("imagenet", "any"),)),
    Plan(IDENTICAL, "gldv2", (Copy("gldv2", "same"),)),
    Plan("reencode_q60", "imagenet", (Copy("imagenet", "same"),)),
    Plan("resize_0.6", "products10k", (Copy("products10k", "other"),)),
    Plan("crop_3pct", "gldv2", (Copy("gldv2", "same"),)),
    Plan("brightness_+8", "products10k", (Copy("imagenet", "any"),)),
    Plan("resize_0.4", "gldv2", (Copy("imagenet", "any"),)),
    # the edits web-scraped datasets carry (unibed.sample.edits), each found by the
    # build's default search: its pHash, or one of its probe hashes
    Plan("mirror", "imagenet", (Copy("imagenet", "same"),)),
    Plan("crop_4pct", "products10k", (Copy("products10k", "same"),)),
    Plan("crop_8pct", "imagenet", (Copy("products10k", "any"),)),
    Plan("crop_12pct", "products10k", (Copy("products10k", "other"),)),
    Plan("letterbox_black", "imagenet", (Copy("imagenet", "same"),)),
    Plan("pillarbox_grey", "gldv2", (Copy("gldv2", "same"),)),
    Plan("caption_strip", "products10k", (Copy("products10k", "same"),)),
    Plan("greyscale", "imagenet", (Copy("imagenet", "other"),)),
    Plan("rotate_3deg", "products10k", (Copy("products10k", "same"),)),
    Plan("downscale_q30", "gldv2", (Copy("imagenet", "any"),)),
)


def _copy_bytes(original: SampleImage, transform: str, spacing: PerceptualSpacing) -> bytes | None:
    """The copy's bytes, or None when this original cannot carry the transform.

    A near copy must stay near its original (within NEAR_DUPLICATE_MAX_DISTANCE, or for
    an edit found by the build's default search) and must not come near any other image
    (that would be an unplanned pair).
    """
    if transform == IDENTICAL:
        return original.data
    if transform in EDITS:
        data = EDITS[transform](decode_rgb(original.data))
        if build_match(original.data, data) is None:
            return None
    else:
        data = NEAR_TRANSFORMS[transform](decode_rgb(original.data))
        if distance(hashes_of(data)[0], hashes_of(original.data)[0]) > NEAR_DUPLICATE_MAX_DISTANCE:
            return None
    hashes, probes = hashes_of(data), probes_of(data)
    if not spacing.admits(hashes, family=original.key, probes=probes):
        return None
    spacing.add(hashes, family=original.key, probes=probes)
    return data


def build_match(original: bytes, copy: bytes) -> tuple[int, str] | None:
    """(distance, duplicates.csv kind) by which the build's default search pairs the two
    images, the closest first; None if it does not."""
    dedup = DedupSpec()
    a, b = (_hashes(data) for data in (original, copy))
    found = []
    if distance(a[IDENTITY], b[IDENTITY]) <= dedup.near_hamming_threshold:
        found.append((distance(a[IDENTITY], b[IDENTITY]), IDENTITY))
    for x, y in ((a, b), (b, a)):
        for probe, target, radius in rules_from(dedup.probes.model_dump()):
            if probe in x and target in y and distance(x[probe], y[target]) <= radius:
                found.append((distance(x[probe], y[target]), f"{IDENTITY}:{probe}"))
    return min(found, default=None)


def _hashes(data: bytes) -> dict[str, int]:
    result = preprocess(data, ImageSpec())
    assert isinstance(result, ProcessedImage), result
    return {IDENTITY: result.phash, **dict(result.probes)}


def _copy_label(copy: Copy, original: SampleImage, catalog: Catalog, rng) -> str:
    if copy.label == "same" and copy.source == original.source:
        return original.label  # (a borrowed original's copy takes any label of its source)
    labels = [c.label for c in catalog.classes[copy.source]
              if copy.label == "any" or c.label != original.label]
    return labels[rng.integers(len(labels))]


def _group_match(transform: str, original: SampleImage, copies: list[SampleImage]) -> str:
    """How duplicates.csv names the copies' match: "exact", "near", or "near:<probe kind>"."""
    if transform == IDENTICAL:
        return "exact"
    return build_match(original.data, copies[0].data)[1]


def _original_for(plan: Plan, catalog: Catalog, spacing: PerceptualSpacing, rng):
    """An unused clean original of the plan's source that can carry its transform, and the
    copy's bytes; a small sample short of originals there borrows one from another source."""
    free = sorted((im for im in catalog.images
                   if im.split == "train" and im.in_clean and im.quirk is None
                   and im.duplicate_group is None), key=lambda im: im.image_id)
    for candidates in ([im for im in free if im.source == plan.source],
                       [im for im in free if im.source != plan.source]):
        for index in rng.permutation(len(candidates)):
            original = candidates[index]
            # every copy of a plan gets the same bytes (the transform is deterministic)
            if (data := _copy_bytes(original, plan.transform, spacing)) is not None:
                return original, data
    return None


def plant_duplicates(seed: int, catalog: Catalog, ids: Identifiers,
                     spacing: PerceptualSpacing) -> None:
    """Add each plan's copies to the catalog and record the groups."""
    for index, plan in enumerate(PLANS):
        rng = rng_for(seed, "duplicates", index)
        found = _original_for(plan, catalog, spacing, rng)
        if found is None and plan.transform in EDITS:
            continue  # a sample too small for every edit (the standard one carries them all)
        if found is None:
            raise RuntimeError(f"no original can carry duplicate plan {plan}")
        original, data = found
        group_id = len(catalog.groups)

        original.duplicate_group = group_id
        copies = []
        for copy in plan.copies:
            label = _copy_label(copy, original, catalog, rng)
            copies.append(SampleImage(copy.source, ids.image_id(copy.source, label), label, data,
                                      expected="duplicate", duplicate_group=group_id))
        catalog.images += copies
        members = [original, *copies]
        catalog.groups.append(DuplicateGroup(
            id=group_id,
            kind="exact" if plan.transform == IDENTICAL else "near",
            transform=plan.transform,
            members=tuple(im.key for im in members),
            conflicting_labels=len({(im.source, im.label) for im in members}) > 1,
            cross_source=len({im.source for im in members}) > 1,
            phash_distance=max(distance(hashes_of(im.data)[0], hashes_of(original.data)[0])
                               for im in copies),
            match=_group_match(plan.transform, original, copies),
        ))
