"""Probe hashes: the pHash stays imagehash's, and each edit's copy meets its original
through the probe kind built for it (a pHash alone misses these copies)."""

from __future__ import annotations

import glob
import io
import os

import imagehash
import numpy as np
import pytest
from PIL import Image

from unibed.dataplane.images.phash import phash
from unibed.dataplane.images.robust_hashes import image_hashes
from unibed.dataplane.images.rotation import turn_angle
from unibed.sample.duplicates import build_match
from unibed.sample.edits import EDITS, rotated
from unibed.sample.encoding import encode_jpeg


@pytest.fixture(scope="module")
def photos(sample_root) -> list[bytes]:
    """A few of the sample's Products-10K images (photo-sized, drawn scenes)."""
    paths = sorted(glob.glob(os.path.join(sample_root, "products10k", "train", "*.jpg")))[:4]
    assert len(paths) == 4
    out = []
    for path in paths:
        with open(path, "rb") as f:
            out.append(f.read())
    return out


def test_identity_is_imagehash_and_top85_is_the_top_crops_phash(photos):
    for data in photos:
        image = Image.open(io.BytesIO(data)).convert("RGB")
        hashes = image_hashes(image)
        assert hashes.identity == int(str(imagehash.phash(image)), 16)
        top = image.crop((0, 0, image.width, round(image.height * 0.85)))
        assert dict(hashes.probes)["top85"] == phash(top)
        assert {k for k, _ in hashes.probes} >= {"mirror", "crop92", "crop84", "crop76", "top85"}


@pytest.mark.parametrize("edit, kinds", [
    ("mirror", {"near:mirror"}),
    ("crop_8pct", {"near:crop84"}),
    ("crop_12pct", {"near:crop76"}),
    ("letterbox_black", {"near:trim"}),
    ("caption_strip", {"near:top85", "near"}),
    ("rotate_3deg", {"near:rotate92", "near"}),
])
def test_each_edit_is_found_by_its_probe(photos, edit, kinds):
    """The build's default search pairs an edited copy with its original (through the
    build's own preprocess), by the kind made for the edit, for most of the photos."""
    found = [build_match(data, EDITS[edit](Image.open(io.BytesIO(data)).convert("RGB"))) for data in photos]
    assert sum(f is not None and f[1] in kinds for f in found) >= 3, found


def test_turn_angle_is_read_from_filled_corners(photos):
    image = Image.open(io.BytesIO(photos[0])).convert("RGB")
    for degrees in (-4.5, 2.5):
        turned = Image.open(io.BytesIO(encode_jpeg(rotated(image, degrees, fit=False)))).convert("L")
        angle = turn_angle(np.asarray(turned).astype(np.float64))
        assert angle is not None and abs(angle - degrees) < 0.4
    assert turn_angle(np.asarray(image.convert("L")).astype(np.float64)) is None
