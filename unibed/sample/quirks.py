"""Odd and broken inputs, one of each kind real datasets hold, and what a build must do."""

from __future__ import annotations

from dataclasses import dataclass

from unibed.sample.catalog import SampleClass, SampleImage
from unibed.sample.encoding import (
    HTML_ERROR_PAGE,
    claim_pixels,
    encode_cmyk_jpeg,
    encode_exif_rotated_jpeg,
    encode_grayscale_jpeg,
    encode_png,
    truncate,
)
from unibed.sample.identifiers import Identifiers
from unibed.sample.painter import Job, Painter
from unibed.sample.seeding import rng_for
from unibed.schemas.source_record import RejectReason

VERY_LARGE_SIZE = (5000, 3750)
PIXEL_BOMB_SIZE = (320, 240)  # really encoded
PIXEL_BOMB_CLAIM = (40000, 40000)  # what its header says: 1.6 gigapixels


@dataclass(frozen=True)
class Quirk:
    source: str
    name: str
    reject_reason: RejectReason | None  # None: valid, the build must accept it


QUIRKS = (
    Quirk("imagenet", "cmyk", None),  # ImageNet train holds 22 of these
    Quirk("imagenet", "grayscale", None),
    Quirk("imagenet", "png_named_jpeg", None),  # and one of these
    Quirk("imagenet", "truncated", RejectReason.TRUNCATED),
    Quirk("products10k", "empty", RejectReason.EMPTY_FILE),
    Quirk("products10k", "not_an_image", RejectReason.NOT_AN_IMAGE),
    Quirk("products10k", "exif_rotated", None),
    Quirk("products10k", "missing", RejectReason.MISSING_IMAGE),
    Quirk("gldv2", "very_large", None),
    Quirk("gldv2", "pixel_bomb", RejectReason.TOO_MANY_PIXELS),
    Quirk("gldv2", "missing", RejectReason.MISSING_IMAGE),
    Quirk("gldv2", "unlabelled", RejectReason.UNLABELLED_IMAGE),
)


def _contents(quirk: str, painter: Painter, cls: SampleClass, image_id: str) -> bytes | None:
    def paint(**options) -> bytes:
        return painter.paint(Job(cls.source, image_id, cls.style, **options)).data

    match quirk:
        case "cmyk":
            return paint(encode=encode_cmyk_jpeg)
        case "grayscale":
            return paint(encode=encode_grayscale_jpeg)
        case "png_named_jpeg":
            return paint(encode=encode_png)
        case "exif_rotated":
            return paint(encode=encode_exif_rotated_jpeg)
        case "very_large":
            return paint(size=VERY_LARGE_SIZE)
        case "unlabelled":
            return paint()
        case "truncated":
            return truncate(paint())
        case "pixel_bomb":
            return claim_pixels(paint(size=PIXEL_BOMB_SIZE), *PIXEL_BOMB_CLAIM)
        case "empty":
            return b""
        case "not_an_image":
            return HTML_ERROR_PAGE
        case "missing":
            return None
    raise ValueError(f"unknown quirk {quirk!r}")


def plant_quirks(seed: int, classes: dict[str, list[SampleClass]], ids: Identifiers,
                 painter: Painter) -> list[SampleImage]:
    """One extra image per quirk, in a class picked at random, listed like any other image."""
    images = []
    for quirk in QUIRKS:
        candidates = classes[quirk.source]
        cls = candidates[rng_for(seed, "quirk", quirk.source, quirk.name).integers(len(candidates))]
        image_id = ids.image_id(cls.source, cls.label)
        images.append(SampleImage(
            source=cls.source,
            image_id=image_id,
            label=None if quirk.name == "unlabelled" else cls.label,
            data=_contents(quirk.name, painter, cls, image_id),
            expected="ok" if quirk.reject_reason is None else "reject",
            reject_reason=quirk.reject_reason.value if quirk.reject_reason else None,
            quirk=quirk.name,
        ))
    return images
