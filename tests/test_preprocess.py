"""The per-image build step: every bad input gets its reject reason, every good one
comes out as an upright RGB JPEG of the right size (the source's own bytes minus metadata
when it needs no change, else a baseline JPEG), with a pHash bit-identical to imagehash's
on the stored pixels."""

from __future__ import annotations

import hashlib
import io
import warnings

import imagehash
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFile, ImageFilter

from unibed.dataplane.images.phash import phash, resize_lanczos
from unibed.dataplane.images.preprocess import (
    REDUCING_GAP,
    RESAMPLE,
    ProcessedImage,
    Rejected,
    jpeg_without_metadata,
    preprocess,
)
from unibed.schemas.features import phash_to_int64
from unibed.schemas.recipe import ImageSpec
from unibed.schemas.source_record import RejectReason

SPEC = ImageSpec()  # resize="pow2"
EXACT = ImageSpec(resize="exact")
S = SPEC.shorter_side
WHITE, RED = (255, 255, 255), (255, 0, 0)
SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


# --- inputs --------------------------------------------------------------------------


def encode(image: Image.Image, fmt: str = "JPEG", **options) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **({"quality": 90} if fmt == "JPEG" else {}) | options)
    return out.getvalue()


def photo_like(width: int, height: int, seed: int = 0) -> Image.Image:
    """Colour waves, blurred shapes, mild noise."""
    rng = np.random.default_rng(seed)
    w, h = max(width // 4, 1), max(height // 4, 1)  # smooth: draw small, scale up
    y, x = np.mgrid[0:h, 0:w] / max(w, h)
    waves = [128 + 70 * np.sin(rng.uniform(2, 8) * x * 6 + rng.uniform(2, 8) * y * 6 + c)
             for c in range(3)]
    image = Image.fromarray(np.stack(waves, axis=-1).astype(np.uint8)).resize((width, height))
    draw = ImageDraw.Draw(image)
    for _ in range(8):
        cx, cy, r = rng.integers(0, width), rng.integers(0, height), max(width, height) // 8
        fill = tuple(int(v) for v in rng.integers(0, 256, 3))
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
    image = image.filter(ImageFilter.GaussianBlur(1))
    noise = rng.integers(-8, 9, (height, width, 3), dtype=np.int16)
    return Image.fromarray(np.clip(np.asarray(image, np.int16) + noise, 0, 255).astype(np.uint8))


def claim_size(jpeg: bytes, width: int, height: int) -> bytes:
    """The same JPEG with its frame header patched to claim another size."""
    pos = 2
    while jpeg[pos + 1] not in SOF_MARKERS:
        pos += 2 + int.from_bytes(jpeg[pos + 2:pos + 4], "big")
    return jpeg[:pos + 5] + height.to_bytes(2, "big") + width.to_bytes(2, "big") + jpeg[pos + 9:]


def processed(data: bytes, spec: ImageSpec = SPEC) -> ProcessedImage:
    result = preprocess(data, spec)
    assert isinstance(result, ProcessedImage), result
    return result


def rejected(data: bytes, reason: RejectReason, spec: ImageSpec = SPEC) -> Rejected:
    result = preprocess(data, spec)
    assert isinstance(result, Rejected) and result.reason is reason, result
    assert result.detail
    return result


def stored_pixels(result: ProcessedImage) -> np.ndarray:
    with Image.open(io.BytesIO(result.jpeg)) as image:
        assert (image.format, image.mode) == ("JPEG", "RGB")
        assert image.size == (result.width, result.height)
        return np.asarray(image, dtype=np.int16)


def imagehash_int(image: Image.Image) -> int:
    return int(str(imagehash.phash(image)), 16)


# --- rejections ----------------------------------------------------------------------


def test_empty_file():
    rejected(b"", RejectReason.EMPTY_FILE)


def test_html_error_page_is_not_an_image():
    page = b"<!DOCTYPE html>\n<html><body><h1>404 Not Found</h1></body></html>\n"
    assert "<!DOCTYPE" in rejected(page, RejectReason.NOT_AN_IMAGE).detail


def test_a_format_outside_the_accepted_ones_is_not_an_image():
    rejected(encode(Image.new("RGB", (64, 64)), "PCX"), RejectReason.NOT_AN_IMAGE)


def test_jpeg_cut_in_half_is_truncated():
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    jpeg = encode(photo_like(500, 375))
    detail = rejected(jpeg[: len(jpeg) // 2], RejectReason.TRUNCATED).detail
    assert "truncated" in detail and "JPEG 500x375" in detail


def test_png_cut_short_is_truncated():
    png = encode(photo_like(300, 300), "PNG")
    rejected(png[: len(png) * 2 // 3], RejectReason.TRUNCATED)


@pytest.mark.parametrize("size", [(10, 10), (10, 400), (400, 31)])
def test_a_side_below_min_side_is_too_small(size):
    rejected(encode(Image.new("RGB", size, RED), "PNG"), RejectReason.TOO_SMALL)


def test_a_side_of_min_side_is_enough():
    assert processed(encode(Image.new("RGB", (32, 32), RED), "PNG")).width == 32


def test_pixel_bomb_header_is_rejected_before_decoding():
    bomb = claim_size(encode(photo_like(320, 240)), 40000, 40000)  # 1.6 gigapixels claimed
    rejected(bomb, RejectReason.TOO_MANY_PIXELS)


def test_max_pixels_is_checked_from_the_header():
    # 80 Mpx claimed, only 320x240 really encoded: decoding it would fail as truncated
    claimed = claim_size(encode(photo_like(320, 240)), 20000, 4000)
    spec = ImageSpec(max_pixels=50_000_000)
    detail = rejected(claimed, RejectReason.TOO_MANY_PIXELS, spec).detail
    assert "80,000,000 pixels > max_pixels 50,000,000" in detail


def test_pillows_bomb_warning_counts_as_too_many_pixels():
    claimed = claim_size(encode(photo_like(320, 240)), 10000, 9000)  # over Pillow's limit, < 2x
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        rejected(claimed, RejectReason.TOO_MANY_PIXELS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        rejected(claimed, RejectReason.TOO_MANY_PIXELS)  # by our own max_pixels check


def test_a_side_jpeg_cannot_hold_is_rejected():
    strip = encode(Image.new("L", (70_000, 40), 128), "PNG")
    assert "65500" in rejected(strip, RejectReason.TOO_MANY_PIXELS).detail


# --- normalisation -------------------------------------------------------------------


def quadrants(colours, size=(400, 300), mode="RGB") -> Image.Image:
    """Four flat quadrants: top-left, top-right, bottom-left, bottom-right."""
    image = Image.new(mode, size)
    w, h = size[0] // 2, size[1] // 2
    for (x, y), colour in zip([(0, 0), (w, 0), (0, h), (w, h)], colours):
        image.paste(colour, (x, y, x + w, y + h))
    return image


def quadrant_means(pixels: np.ndarray) -> list[np.ndarray]:
    h, w = pixels.shape[0] // 2, pixels.shape[1] // 2
    centre = (slice(h // 4, h * 3 // 4), slice(w // 4, w * 3 // 4))
    return [pixels[y * h:(y + 1) * h, x * w:(x + 1) * w][centre].mean(axis=(0, 1))
            for y in (0, 1) for x in (0, 1)]


def assert_close(actual, expected, tolerance=6):
    assert np.abs(np.asarray(actual, float) - np.asarray(expected, float)).max() <= tolerance, (
        actual, expected)


def test_exact_resizes_rgb_jpeg_to_the_shorter_side():
    result = processed(encode(photo_like(500, 375)), EXACT)
    assert (result.width, result.height) == (384, 288)
    assert (result.source_width, result.source_height) == (500, 375)
    assert (result.source_format, result.source_mode) == ("JPEG", "RGB")


def test_cmyk_jpeg_converts_to_sensible_rgb():
    colours = [RED, (0, 160, 0), (0, 0, 200), (250, 220, 40)]
    cmyk_jpeg = encode(quadrants(colours).convert("CMYK"))  # Pillow writes Adobe, inverted
    result = processed(cmyk_jpeg)
    assert result.source_mode == "CMYK"
    for mean, colour in zip(quadrant_means(stored_pixels(result)), colours):
        assert_close(mean, colour, tolerance=30)  # naive CMYK->RGB, no colour management


def test_grayscale_jpeg_becomes_grey_rgb():
    result = processed(encode(photo_like(400, 300).convert("L")))
    pixels = stored_pixels(result)
    assert result.source_mode == "L"
    assert np.abs(pixels[..., 0] - pixels[..., 1]).max() <= 2


def test_transparent_rgba_pixels_become_white():
    image = quadrants([(0, 0, 0, 0), (0, 0, 0, 255), (0, 0, 0, 128), (255, 0, 0, 255)],
                      mode="RGBA")
    result = processed(encode(image, "PNG"))
    means = quadrant_means(stored_pixels(result))
    assert_close(means[0], WHITE)  # fully transparent black: white, not black
    assert_close(means[1], (0, 0, 0))
    assert_close(means[2], (127, 127, 127))  # half-transparent black over white
    assert_close(means[3], RED)


def test_palette_with_a_transparent_entry_flattens_to_white():
    image = quadrants([0, 1, 2, 3], mode="P")
    image.putpalette([0, 0, 255, 255, 0, 0, 0, 255, 0, 10, 10, 10])
    result = processed(encode(image, "PNG", transparency=0))
    assert result.source_mode == "P"
    means = quadrant_means(stored_pixels(result))
    assert_close(means[0], WHITE)
    assert_close(means[1], RED)


@pytest.mark.parametrize("mode", ["LA", "P", "1", "L", "RGBA"])
def test_other_modes_come_out_rgb(mode):
    result = processed(encode(photo_like(300, 300).convert(mode), "PNG"))
    assert result.source_mode == mode
    stored_pixels(result)


def test_16_bit_grey_png_is_scaled_not_clipped():
    ramp = np.tile(np.linspace(0, 65535, 512).astype(np.uint16), (300, 1))
    result = processed(encode(Image.fromarray(ramp), "PNG"))
    assert result.source_mode.startswith("I")
    row = stored_pixels(result)[result.height // 2, :, 0]
    assert row[:10].mean() < 10 and row[-10:].mean() > 245
    assert_close(row[result.width // 2 - 2:result.width // 2 + 2].mean(), 128, tolerance=8)


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "GIF", "BMP", "TIFF"])
def test_accepted_formats(fmt):
    result = processed(encode(quadrants([RED, WHITE, RED, WHITE], size=(320, 320)), fmt))
    assert result.source_format == fmt
    assert_close(quadrant_means(stored_pixels(result))[0], RED, tolerance=10)


def test_gif_uses_its_first_frame():
    frames = [Image.new("P", (100, 100), 0), Image.new("P", (100, 100), 1)]
    for frame in frames:
        frame.putpalette([255, 0, 0, 0, 0, 255])
    gif = encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    assert_close(stored_pixels(processed(gif)).mean(axis=(0, 1)), RED)


@pytest.mark.parametrize("spec, size", [(ImageSpec(shorter_side=512), (300, 400)),
                                        (SPEC, (300, 400)),
                                        (ImageSpec(shorter_side=128), (150, 200)),
                                        (EXACT, (288, 384))])
def test_exif_orientation_6_gives_an_upright_portrait(spec, size):
    stored = quadrants([RED, (0, 0, 255), (0, 160, 0), (250, 220, 40)])  # 400x300 as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # display: turn 90 degrees clockwise
    result = processed(encode(stored, exif=exif.tobytes()), spec)
    assert (result.width, result.height) == size
    assert (result.source_width, result.source_height) == (300, 400)
    top_left, top_right, bottom_left, bottom_right = quadrant_means(stored_pixels(result))
    assert_close(top_right, RED, tolerance=10)  # the stored top-left corner, turned
    assert_close(top_left, (0, 160, 0), tolerance=10)
    assert_close(bottom_right, (0, 0, 255), tolerance=10)
    assert_close(bottom_left, (250, 220, 40), tolerance=10)


@pytest.mark.parametrize("spec", [SPEC, EXACT])
def test_never_upscales(spec):
    result = processed(encode(photo_like(200, 100)), spec)
    assert (result.width, result.height) == (200, 100)


@pytest.mark.parametrize("size", [(1001, 333), (333, 1001), (640, 480), (4001, 300),
                                  (2997, 1999), (289, 2000), (1600, 1200)])
def test_exact_keeps_the_aspect_ratio(size):
    width, height = size
    result = processed(encode(Image.new("RGB", size, RED)), EXACT)
    short, long = sorted((result.width, result.height))
    assert short == 288
    assert abs(long - max(size) * 288 / min(size)) <= 1
    assert (result.width > result.height) == (width > height)


# --- resize="pow2" -------------------------------------------------------------------


def draft_decoded(jpeg: bytes, scale: int) -> Image.Image:
    with Image.open(io.BytesIO(jpeg)) as image:
        image.draft("RGB", (image.width // scale, image.height // scale))
        image.load()
        return image.copy()


@pytest.mark.parametrize("size", [(500, 375), (300, 200), (575, 575)])
def test_pow2_stores_a_source_below_twice_the_shorter_side_at_its_size(size):
    result = processed(encode(photo_like(*size)))
    assert (result.width, result.height) == size


@pytest.mark.parametrize("size, scale, stored", [((1600, 1200), 4, (400, 300)),
                                                 ((1200, 1600), 4, (300, 400)),
                                                 ((5000, 3750), 8, (625, 469))])
def test_pow2_reduces_a_jpeg_in_the_dct_domain(size, scale, stored):
    jpeg = encode(photo_like(400, 300, seed=2).resize(size))  # large but quick to make
    result = processed(jpeg)
    assert (result.width, result.height) == stored  # sides rounded up, as libjpeg does
    draft = draft_decoded(jpeg, scale)
    assert draft.size == stored
    assert result.phash == imagehash_int(draft)  # the stored pixels are libjpeg's, as decoded


def test_pow2_reduces_other_formats_by_a_box_filter():
    source = photo_like(1200, 900, seed=4)
    result = processed(encode(source, "PNG"))
    assert (result.width, result.height) == (600, 450)
    assert result.phash == imagehash_int(source.reduce(2))


def test_pow2_reduces_beyond_8x_after_the_dct_scaling():
    # the same case as a 5000-px photo at shorter_side=288, in small: 1000 >= 16 * 32 - 7
    jpeg = encode(photo_like(1200, 1000, seed=6))
    result = processed(jpeg, ImageSpec(shorter_side=32))
    assert (result.width, result.height) == (75, 63)
    assert result.phash == imagehash_int(draft_decoded(jpeg, 8).reduce(2))


# Shorter sides around each boundary, for shorter_side S=32: 2S-1 (the largest kept as
# it is), 2S (the smallest halved), ..., 16S-7 (the smallest reduced 16x: past the DCT's 8x).
BOUNDARY_SIDES = [31, 32, 33, 62, 63, 64, 65, 125, 126, 127, 128, 253, 254, 255, 256,
                  505, 506, 507, 508, 509, 511, 512, 1013]


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_pow2_stored_shorter_side_is_in_s_to_2s(fmt):
    spec = ImageSpec(shorter_side=32, min_side=1)
    for short in BOUNDARY_SIDES:
        for size in [(short, short + 37), (3 * short + 5, short)]:
            result = processed(encode(Image.new("RGB", size, RED), fmt), spec)
            stored = (result.width, result.height)
            factor = next(f for f in (1, 2, 4, 8, 16, 32, 64)
                          if stored == tuple(-(-side // f) for side in size))  # a power of two
            assert 32 <= min(stored) < 64 or (factor == 1 and min(size) < 32), (size, stored)
            if min(size) < 64:
                assert factor == 1, (size, stored)  # below 2S: as it is


def test_pow2_and_exact_agree_below_the_shorter_side():
    jpeg = encode(photo_like(250, 200, seed=8))
    assert processed(jpeg) == processed(jpeg, EXACT)


# --- a JPEG stored as is -------------------------------------------------------------


def decoded(jpeg: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(jpeg)) as image:
        return np.asarray(image)


def jpeg_with_metadata(image: Image.Image, **options) -> bytes:
    """A JPEG carrying EXIF (no orientation), ICC, XMP, a comment and trailing bytes."""
    exif = Image.Exif()
    exif[0x010F] = "SomeCamera"  # Make
    data = encode(image, exif=exif.tobytes(), icc_profile=b"\0" * 128, comment=b"a comment",
                  xmp=b"<x:xmpmeta>SomeXmp</x:xmpmeta>", **options)
    return data + b"SomeTrailer"  # e.g. a phone's appended data


@pytest.mark.parametrize("options", [{}, {"progressive": True}, {"restart_marker_blocks": 3},
                                     {"subsampling": "4:4:4"}, {"keep_rgb": True},
                                     {"progressive": True, "restart_marker_rows": 1}])
def test_a_jpeg_needing_no_change_is_stored_as_is_minus_metadata(options):
    data = jpeg_with_metadata(photo_like(500, 375, seed=9), **options)
    result = processed(data)
    assert result.jpeg == jpeg_without_metadata(data) and len(result.jpeg) < len(data)
    assert np.array_equal(decoded(result.jpeg), decoded(data))  # no generation loss
    with Image.open(io.BytesIO(result.jpeg)) as stored:
        assert stored.mode == "RGB" and stored.size == (result.width, result.height)
        assert not {"exif", "icc_profile", "comment", "xmp"} & set(stored.info), stored.info
        assert stored.info.get("progressive", 0) == options.get("progressive", 0)
        assert result.phash == imagehash_int(stored)
    for leak in (b"SomeCamera", b"a comment", b"SomeXmp", b"SomeTrailer"):
        assert leak not in result.jpeg
    assert processed(data) == result  # deterministic


def test_stripping_keeps_the_segments_that_steer_decoding():
    # an RGB (not YCbCr) JPEG: libjpeg knows it from the Adobe segment, transform 0
    data = encode(photo_like(300, 200), keep_rgb=True)
    assert b"Adobe" in data and b"JFIF" not in data
    stripped = jpeg_without_metadata(data)
    assert b"Adobe" in stripped and stripped == data  # nothing else to remove
    jfif = encode(photo_like(300, 200))
    assert jpeg_without_metadata(jfif) == jfif  # Pillow writes JFIF and nothing more


def test_the_first_image_of_an_mpo_is_stored_as_a_plain_jpeg():
    first, second = photo_like(400, 300, seed=1), photo_like(400, 300, seed=2)
    mpo = encode(first, "MPO", save_all=True, append_images=[second])
    result = processed(mpo)
    assert result.source_format == "MPO"
    with Image.open(io.BytesIO(mpo)) as image:
        assert np.array_equal(decoded(result.jpeg), np.asarray(image))  # frame 0, as is
    assert len(result.jpeg) < len(mpo) / 1.8  # the second image is gone
    with Image.open(io.BytesIO(result.jpeg)) as stored:
        assert stored.format == "JPEG" and "mpinfo" not in stored.info


def rewritten_frame(jpeg: bytes, marker: int) -> bytes:
    """The same JPEG with its SOFn marker replaced: SOF1 decodes the same as SOF0."""
    pos = jpeg.index(b"\xff\xc0")
    return jpeg[:pos + 1] + bytes([marker]) + jpeg[pos + 2:]


@pytest.mark.parametrize("make", [
    lambda: encode(photo_like(400, 300).convert("L")),  # grayscale
    lambda: encode(photo_like(400, 300).convert("CMYK")),
    lambda: rewritten_frame(encode(photo_like(400, 300)), 0xC1),  # extended sequential
    lambda: encode(photo_like(400, 300), "PNG"),
    lambda: encode(photo_like(400, 300), exif=orientation_exif(3)),
    lambda: encode(photo_like(1200, 900)),  # to be reduced
])
def test_any_other_image_is_decoded_and_encoded(make):
    data = make()
    result = processed(data)
    assert sof_markers(result.jpeg) == [0xC0]  # our own baseline encoding
    assert result.jpeg != jpeg_without_metadata(data)
    assert result.phash == imagehash_int(stored_image_before_encoding(data))


def orientation_exif(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


def stored_image_before_encoding(data: bytes) -> Image.Image:
    """What pow2 stores for these sources: no reduction but 1200x900's halving."""
    with Image.open(io.BytesIO(data)) as image:
        if image.format == "JPEG" and min(image.size) >= 2 * S:
            return draft_decoded(data, 2)
        rgb = image.convert("RGB")
        if image.getexif().get(0x0112) == 3:
            return rgb.transpose(Image.Transpose.ROTATE_180)
        return rgb


def frame_header(jpeg: bytes) -> bytes:
    """The SOF0 segment of a JPEG whose next segment is a DHT, as Pillow writes them."""
    return jpeg[jpeg.index(b"\xff\xc0"):jpeg.index(b"\xff\xc4")]


def valid_jpeg() -> bytes:
    return encode(photo_like(64, 48), comment=b"c")


@pytest.mark.parametrize("damage", [
    lambda j: j[2:],  # no SOI
    lambda j: j[:-2],  # no EOI
    lambda j: j[:20],  # cut inside the header
    lambda j: j[:4] + b"\xff\xff" + j[6:],  # a segment longer than the file
    lambda j: j[:4] + b"\x00\x01" + j[6:],  # a length below 2
    lambda j: j[:2] + b"\xff\xd0" + j[2:],  # a standalone marker among the segments
    lambda j: j[:2] + b"\x00" + j[2:],  # not a marker
    lambda j: j.replace(frame_header(j), b""),  # a scan without a frame
    lambda j: j.replace(b"\xff\xda", frame_header(j) + b"\xff\xda"),  # a second frame
    lambda j: rewritten_frame(j, 0xC3),  # lossless
    lambda j: j[:j.index(b"\xff\xda")] + b"\xff\xd9",  # no scan
])
def test_stripping_gives_up_on_anything_unexpected(damage):
    assert jpeg_without_metadata(valid_jpeg()) is not None
    assert jpeg_without_metadata(damage(valid_jpeg())) is None


@pytest.mark.parametrize("spec", [SPEC, EXACT])  # stored as is, and re-encoded
def test_output_is_baseline_jpeg_without_metadata(spec):
    source = photo_like(600, 400)
    exif = Image.Exif()
    exif[0x010F] = "SomeCamera"  # Make
    fake_profile = b"\0" * 128  # any bytes do: we only check they are not carried over
    result = processed(encode(source, exif=exif.tobytes(), icc_profile=fake_profile), spec)
    with Image.open(io.BytesIO(result.jpeg)) as image:
        assert "exif" not in image.info and "icc_profile" not in image.info
        assert not image.info.get("progressive") and not image.info.get("progression")
    markers = sof_markers(result.jpeg)
    assert markers == [0xC0]  # SOF0: baseline DCT
    assert b"SomeCamera" not in result.jpeg


def sof_markers(jpeg: bytes) -> list[int]:
    found, pos = [], 2
    while pos + 4 <= len(jpeg) and jpeg[pos] == 0xFF and jpeg[pos + 1] != 0xDA:  # until SOS
        if jpeg[pos + 1] in SOF_MARKERS:
            found.append(jpeg[pos + 1])
        pos += 2 + int.from_bytes(jpeg[pos + 2:pos + 4], "big")
    return found


@pytest.mark.parametrize("spec", [SPEC, EXACT])
def test_same_input_same_bytes(spec):
    data = encode(photo_like(900, 700, seed=3))
    first, second = processed(data, spec), processed(data, spec)
    assert first == second and first.jpeg == second.jpeg


def test_sha256_is_of_the_original_bytes():
    data = encode(photo_like(400, 300))
    assert processed(data).sha256 == hashlib.sha256(data).hexdigest()


# --- pHash ---------------------------------------------------------------------------


def varied_images():
    rng = np.random.default_rng(7)
    sizes = [(1, 1), (2, 3), (31, 32), (32, 32), (33, 33), (5, 300), (300, 5), (288, 384),
             (384, 288), (32, 100), (100, 32), (500, 375), (1000, 7), (2000, 1500)]
    for i, (w, h) in enumerate(sizes + [tuple(rng.integers(1, 800, 2)) for _ in range(24)]):
        y, x = np.mgrid[0:h, 0:w]
        yield Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))  # noise
        gradient = np.stack([x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1), (x + y) % 256], -1)
        yield Image.fromarray(gradient.astype(np.uint8))
        yield Image.new("RGB", (w, h), tuple(int(v) for v in rng.integers(0, 256, 3)))  # ties
        if min(w, h) >= 8:
            yield photo_like(w, h, seed=i)
    yield Image.new("L", (100, 50), 0)  # all coefficients but DC are zero


def test_phash_is_bit_identical_to_imagehash():
    checked = 0
    for image in varied_images():
        ours = phash(image)
        assert ours == imagehash_int(image), image.size
        bits = imagehash.phash(image).hash.flatten()
        assert ours == int("".join("1" if b else "0" for b in bits), 2)  # first bit = MSB
        assert 0 <= ours < 1 << 64
        phash_to_int64(ours)  # fits the record's int64 feature
        checked += 1
    assert checked > 100


def test_the_32x32_resize_matches_pillow_for_every_side_length():
    # the exact-arithmetic core of our pHash, compared pixel for pixel
    rng = np.random.default_rng(3)
    swept = [(1 + side * 7 % 97, side) if side % 2 else (side, 1 + side * 7 % 97)
             for side in range(1, 1200)]
    very_tall = [(3300, 32), (5000, 7), (401, 4), (3200, 32), (40, 3000)]  # Pillow: vertical first
    for height, width in swept + very_tall:
        gray = rng.integers(0, 256, (height, width), dtype=np.uint8)
        expected = np.asarray(Image.fromarray(gray).resize((32, 32), Image.Resampling.LANCZOS))
        assert np.array_equal(resize_lanczos(gray.astype(np.float64), 32), expected), gray.shape


def test_phash_is_of_the_stored_pixels_before_jpeg_encoding():
    source = photo_like(600, 450, seed=5)
    result = processed(encode(source, "PNG"), EXACT)  # lossless source: known stored pixels
    stored = source.resize((result.width, result.height), RESAMPLE, reducing_gap=REDUCING_GAP)
    assert result.phash == imagehash_int(stored)
    with Image.open(io.BytesIO(result.jpeg)) as reencoded:
        assert abs(imagehash_int(reencoded) ^ result.phash).bit_count() <= 4


def test_draft_decoding_hashes_like_a_full_decode():
    jpeg = encode(photo_like(2400, 1800, seed=11))
    result = processed(jpeg)
    assert (result.width, result.height) == (600, 450)  # decoded at 1/4 scale
    with Image.open(io.BytesIO(jpeg)) as full:
        no_draft = full.convert("RGB").resize((result.width, result.height), RESAMPLE,
                                              reducing_gap=REDUCING_GAP)
    assert (result.phash ^ phash(no_draft)).bit_count() <= 4
