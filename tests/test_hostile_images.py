"""Images made to cost: a JPEG of thousands of empty scans is refused from its markers,
before decoding, in the build's per-image step and in the web app's upload; ordinary
baseline and progressive JPEGs are not.

Decoding such a file costs a pass over every block per scan: the 2048x2048 one here
(75 KB, 5,000 scans) took 3.5 s to decode before this check, and was then stored."""

from __future__ import annotations

import functools
import http.client
import io
import socket
import threading
import time

import pytest
from PIL import Image
from test_preprocess import photo_like

from unibed.dataplane.images.jpeg_markers import count_markers
from unibed.dataplane.images.preprocess import (
    JPEG_MAX_HEADER_SKIPPED,
    JPEG_MAX_MARKERS,
    JPEG_MAX_SCANS,
    ProcessedImage,
    Rejected,
    preprocess,
)
from unibed.schemas.recipe import ImageSpec
from unibed.schemas.source_record import RejectReason

SPEC = ImageSpec()
# An AC refinement scan of the luma with no entropy-coded data (ITU T.81 B.2.3): Ns=1,
# component 1, tables 0/0, Ss=1 Se=63, Ah=1 Al=0. libjpeg still visits every luma block.
EMPTY_SCAN = b"\xff\xda\x00\x08\x01\x01\x00\x01\x3f\x10"
# A DC refinement scan of all three components: visits every block of the image.
EMPTY_DC_SCAN = b"\xff\xda\x00\x0c\x03\x01\x00\x02\x00\x03\x00\x00\x00\x10"
EOI = b"\xff\xd9"


@functools.cache
def progressive(width: int, height: int, mode: str = "RGB", **options) -> bytes:
    """A progressive JPEG of flat colour: large in pixels, small in bytes."""
    out = io.BytesIO()
    Image.new(mode, (width, height), 120).save(out, "JPEG", quality=90, progressive=True, **options)
    return out.getvalue()


def with_scans(jpeg: bytes, count: int, scan: bytes = EMPTY_SCAN, between: bytes = b"") -> bytes:
    """`jpeg` with `count` more scans before its EOI, each followed by `between`."""
    assert jpeg.endswith(EOI)
    return jpeg[:-2] + (scan + between) * count + EOI


def baseline(width: int, height: int) -> bytes:
    out = io.BytesIO()
    photo_like(width, height).save(out, "JPEG", quality=90)
    return out.getvalue()


@functools.cache
def scan_bomb() -> bytes:
    return with_scans(progressive(2048, 2048), 5000)


def test_a_jpeg_of_thousands_of_empty_scans_is_refused_from_its_markers():
    data = scan_bomb()
    assert len(data) < 80_000
    result = preprocess(data, SPEC)
    assert isinstance(result, Rejected) and result.reason is RejectReason.DECODE_TOO_COSTLY, result
    assert result.detail.startswith(f"JPEG of {len(data):,} bytes: more than {JPEG_MAX_SCANS} scans")


# What libjpeg walks past on its way to the next scan, each checked against libjpeg-turbo's
# own trace (djpeg -verbose): the count may never be lower than libjpeg's.
@pytest.mark.parametrize("data", [
    with_scans(progressive(512, 512), 300, between=b"\x00\x11\x22"),  # garbage: a warning only
    with_scans(progressive(512, 512), 300, between=b"\xff\xff\xff"),  # fill bytes before a marker
    with_scans(progressive(512, 512), 300, between=b"\x12\xff\x00\x34\xff\xd3"),  # stuffing, RST3
    with_scans(progressive(512, 512), 300, between=b"\xff\xfe\x00\x00"),  # COM of length 0
    with_scans(progressive(512, 512), 300, between=b"\xff\xe1\x00\x06Exif"),  # APP1 between
    with_scans(progressive(512, 512), 300, EMPTY_DC_SCAN),
    with_scans(progressive(512, 512), 300)[:-2],  # no EOI: decoded up to the end
], ids=["garbage", "fill", "stuffing-and-restart", "zero-length-com", "app1", "dc-scans", "no-eoi"])
def test_scans_are_counted_as_libjpeg_reads_them(data):
    assert count_markers(data, 10_000, 10_000).scans == 310
    assert preprocess(data, SPEC).reason is RejectReason.DECODE_TOO_COSTLY


@pytest.mark.parametrize("make, scans", [
    (lambda: baseline(640, 480), 1),
    (lambda: progressive(640, 480), 10),
    (lambda: progressive(640, 480, optimize=True, restart_marker_blocks=2), 10),
    (lambda: progressive(640, 480, "L"), 6),
    (lambda: progressive(640, 480, "CMYK"), 18),
    (lambda: with_scans(progressive(640, 480), JPEG_MAX_SCANS - 10), JPEG_MAX_SCANS),
    (lambda: progressive(640, 480) + with_scans(progressive(64, 64), 5000), 10),  # after EOI
], ids=["baseline", "progressive", "optimized-restarts", "grey", "cmyk", "at-the-limit", "trailer"])
def test_ordinary_jpegs_are_decoded(make, scans):
    data = make()
    assert count_markers(data, JPEG_MAX_SCANS, JPEG_MAX_MARKERS).scans == scans
    assert isinstance(preprocess(data, SPEC), ProcessedImage)


def test_one_scan_over_the_limit_is_refused():
    data = with_scans(progressive(640, 480), JPEG_MAX_SCANS - 9)
    assert preprocess(data, SPEC).reason is RejectReason.DECODE_TOO_COSTLY


@pytest.mark.parametrize("flood, count, detail", [
    (b"\xff\xfe\x00\x02", JPEG_MAX_MARKERS + 1, f"more than {JPEG_MAX_MARKERS:,} markers"),
    (b"\xff", JPEG_MAX_HEADER_SKIPPED + 1, f"more than {JPEG_MAX_HEADER_SKIPPED:,})"),
], ids=["empty-com-segments", "fill-bytes"])
def test_a_flood_in_the_header_is_refused_before_pillow_parses_it(flood, count, detail):
    """Pillow's header parser is a Python loop over markers and skipped bytes (10 MB of
    empty COM segments: 4.4 s in Image.open alone; of fill bytes: 6 s)."""
    jpeg = progressive(64, 64)
    result = preprocess(jpeg[:2] + flood * count + jpeg[2:], SPEC)
    assert result.reason is RejectReason.DECODE_TOO_COSTLY and detail in result.detail, result
    assert isinstance(preprocess(jpeg[:2] + flood * 100 + jpeg[2:], SPEC), ProcessedImage)


# --- in the build ----------------------------------------------------------------------


def test_the_build_step_counts_it_as_a_rejection_of_its_file(tmp_path):
    from apache_beam.pvalue import TaggedOutput

    from unibed.dataplane.build.graph.read import Preprocess
    from unibed.dataplane.recipes import load_recipe
    from unibed.schemas.label_map import LabelEntry, LabelMap
    from unibed.schemas.source_record import Location, LocationKind, SourceImage, SourceRecord

    where = "/data/products10k/train/7.jpg"
    record = SourceRecord("products10k", "7", "3", Location(LocationKind.FILE, where))
    label_map = LabelMap((LabelEntry(0, "products10k", "3", "3"),))
    step = Preprocess(load_recipe("recipes/sample.yaml"), label_map, str(tmp_path))
    [output] = step.process(SourceImage(record, scan_bomb()))
    assert isinstance(output, TaggedOutput) and output.tag == "rejected"
    rejection = output.value
    assert (rejection.reason, rejection.image_id, rejection.where) == (RejectReason.DECODE_TOO_COSTLY, "7", where)


# --- in the web app --------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def web_app(tmp_path_factory):
    """`unibed serve`'s app on a real uvicorn server over a small folder gallery that also
    holds the scan bomb; (address, the searcher's log)."""
    import uvicorn
    from test_retrieval import export_projection_model

    from unibed.retrieval.search import Searcher
    from unibed.retrieval.web import create_app

    tmp = tmp_path_factory.mktemp("hostile-web")
    for i, label in enumerate(["cats", "cats", "dogs"]):
        (tmp / "gallery" / label).mkdir(parents=True, exist_ok=True)
        photo_like(320, 240, seed=i).save(tmp / "gallery" / label / f"{i}.jpg")
    (tmp / "gallery" / "dogs" / "bomb.jpg").write_bytes(scan_bomb())
    log: list[str] = []
    searcher = Searcher(export_projection_model(str(tmp / "model")), str(tmp / "gallery"),
                        cache_dir=str(tmp / "cache"), log=log.append)
    server = uvicorn.Server(uvicorn.Config(create_app(searcher, top_k=2, source_thumbnails=False),
                                           host="127.0.0.1", port=_free_port(), log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    yield server.config.port, log
    server.should_exit = True
    thread.join(timeout=20)


def upload(port: int, name: str, data: bytes) -> tuple[int, str]:
    boundary = "unibed-test-boundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{name}\"\r\n"
            f"Content-Type: image/jpeg\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request("POST", "/search", body, {"Content-Type": f"multipart/form-data; boundary={boundary}"})
        response = connection.getresponse()
        return response.status, response.read().decode("utf-8")
    finally:
        connection.close()


def test_the_web_app_refuses_a_scan_bomb_upload_with_400_and_the_reason(web_app):
    port, _ = web_app
    status, page = upload(port, "bomb.jpg", scan_bomb())
    assert status == 400
    reason = f"decode too costly: JPEG of {len(scan_bomb()):,} bytes: more than {JPEG_MAX_SCANS} scans"
    assert f"Cannot search with &#39;bomb.jpg&#39;: {reason}" in page
    status, page = upload(port, "fine.jpg", progressive(640, 480))  # the server keeps serving
    assert status == 200 and "fine.jpg" in page


def test_a_scan_bomb_in_a_folder_gallery_is_skipped_with_the_reason(web_app):
    _, log = web_app
    assert any("skipped dogs/bomb.jpg: decode too costly" in line for line in log), log
