"""What a JPEG made to cost costs, decoded by Pillow, and refused by the per-image step.

    .venv/bin/python -m benchmarks.bench_hostile_jpeg

Prints wall time (best of 3) of
  (a) Pillow decoding (at 1/8 scale, as the build does) progressive JPEGs of flat colour
      with 5,000 empty AC refinement scans added, at 2048x2048 and 4096x4096: the scan bomb,
  (b) Pillow's Image.open alone of 10 MB header floods (empty COM segments, 0xFF fill),
  (c) preprocess() refusing each of them (DECODE_TOO_COSTLY),
  (d) the marker walk's own cost on an ordinary baseline and progressive 1600x1200 JPEG,
      next to preprocess() of the same file.
No assertions: figures only.
"""

from __future__ import annotations

import io
import time

from PIL import Image

from unibed.dataplane.images.jpeg_markers import count_markers
from unibed.dataplane.images.preprocess import preprocess
from unibed.schemas.recipe import ImageSpec

EMPTY_SCAN = b"\xff\xda\x00\x08\x01\x01\x00\x01\x3f\x10"  # luma AC refinement, no data
SPEC = ImageSpec()


def best_of(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def jpeg(size: tuple[int, int], **options) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (120, 140, 90)).save(out, "JPEG", quality=90, **options)
    return out.getvalue()


def photo(size: tuple[int, int], **options) -> bytes:
    from benchmarks.bench_preprocess import photo_like_jpeg

    if not options:
        return photo_like_jpeg(*size, seed=0)
    out = io.BytesIO()
    Image.open(io.BytesIO(photo_like_jpeg(*size, seed=0))).save(out, "JPEG", quality=90, **options)
    return out.getvalue()


def decode_eighth(data: bytes) -> None:
    with Image.open(io.BytesIO(data)) as image:
        image.draft("RGB", (image.width // 8, image.height // 8))
        image.load()


def main() -> None:
    for side in (2048, 4096):
        data = jpeg((side, side), progressive=True)[:-2] + EMPTY_SCAN * 5000 + b"\xff\xd9"
        decode = best_of(lambda d=data: decode_eighth(d), repeats=1)
        refuse = best_of(lambda d=data: preprocess(d, SPEC))
        print(f"scan bomb {side}x{side}, {len(data) / 1e3:.0f} KB, 5,000 scans: Pillow decode "
              f"{decode:.2f} s; preprocess refuses in {refuse * 1e3:.2f} ms")
    small = jpeg((64, 64))
    for name, flood in [("empty COM segments", b"\xff\xfe\x00\x02"), ("0xFF fill", b"\xff")]:
        data = small[:2] + flood * (10_000_000 // len(flood)) + small[2:]
        opened = best_of(lambda d=data: Image.open(io.BytesIO(d)), repeats=1)
        refuse = best_of(lambda d=data: preprocess(d, SPEC))
        print(f"10 MB of {name}: Pillow's Image.open {opened:.2f} s; preprocess refuses in "
              f"{refuse * 1e3:.1f} ms")
    for name, options in [("baseline", {}), ("progressive", {"progressive": True})]:
        data = photo((1600, 1200), **options)
        walk = best_of(lambda d=data: count_markers(d, 100, 10_000), repeats=20)
        whole = best_of(lambda d=data: preprocess(d, SPEC))
        print(f"ordinary {name} 1600x1200 ({len(data) / 1e3:.0f} KB): marker walk "
              f"{walk * 1e6:.0f} us, preprocess {whole * 1e3:.1f} ms ({walk / whole:.2%})")


if __name__ == "__main__":
    main()
