"""Image bytes as datasets really hold them: JPEGs, and the odd or broken files among them."""

from __future__ import annotations

import io

from PIL import Image

JPEG_QUALITY = 90
EXIF_ORIENTATION = 0x0112
ROTATED_90_CW = 6  # EXIF orientation: turn the stored pixels 90 degrees clockwise to display

# what a crawler saves when the server answers with an error page instead of the photo
HTML_ERROR_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head>\n"
    b"<body><h1>Not Found</h1><p>The requested URL was not found on this server.</p>"
    b"</body></html>\n"
)

# JPEG start-of-frame markers (baseline, extended, progressive, ...); C4, C8, CC are not frames
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _save(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def encode_jpeg(image: Image.Image, quality: int = JPEG_QUALITY) -> bytes:
    return _save(image, "JPEG", quality=quality)


def encode_png(image: Image.Image) -> bytes:
    return _save(image, "PNG")


def encode_cmyk_jpeg(image: Image.Image) -> bytes:
    return encode_jpeg(image.convert("CMYK"))


def encode_grayscale_jpeg(image: Image.Image) -> bytes:
    return encode_jpeg(image.convert("L"))


def encode_exif_rotated_jpeg(image: Image.Image) -> bytes:
    """Pixels stored as a sideways-held camera writes them, with the tag that turns them upright."""
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = ROTATED_90_CW
    return _save(image.transpose(Image.Transpose.ROTATE_90), "JPEG", quality=JPEG_QUALITY,
                 exif=exif.tobytes())


def truncate(data: bytes) -> bytes:
    """An interrupted download: the header is intact, the scan data stops halfway."""
    return data[: len(data) // 2]


def claim_pixels(jpeg: bytes, width: int, height: int) -> bytes:
    """Patch a JPEG's frame header to claim another size (a decompression bomb if large)."""
    pos = 2  # after SOI
    while pos + 4 <= len(jpeg):
        if jpeg[pos] != 0xFF:
            raise ValueError(f"not a JPEG marker at byte {pos}")
        marker = jpeg[pos + 1]
        length = int.from_bytes(jpeg[pos + 2: pos + 4], "big")
        if marker in _SOF_MARKERS:
            # segment: marker(2) length(2) precision(1) height(2) width(2)
            size = height.to_bytes(2, "big") + width.to_bytes(2, "big")
            return jpeg[: pos + 5] + size + jpeg[pos + 9:]
        pos += 2 + length
    raise ValueError("no start-of-frame segment in JPEG")


def decode_rgb(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB")
