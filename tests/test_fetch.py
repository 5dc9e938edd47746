"""Fetching published archives from a real loopback HTTP server that injects faults
(tests/fault_server.py) into a local staging folder: bytes identical, verified,
resumable by ranges, idempotent; and the fetch-sources flow on a real Prefect server."""

from __future__ import annotations

import filecmp
import hashlib
import os
import time

import pytest

from tests.fault_server import CORRUPT, FaultServer, drip, drop, status
from unibed.dataplane.fetch import (
    CorruptFileError,
    FetchFailed,
    FetchItem,
    FetchOptions,
    NotEnoughSpace,
    RetryPolicy,
    WrongContentError,
    fetch_items,
    plan_from_base,
    plan_gldv2,
    plan_sources,
)
from unibed.dataplane.fetch.content import check_head
from unibed.dataplane.fetch.retry import parse_retry_after
from unibed.dataplane.sources import iter_source, open_index

TARS = 3  # the default sample writes images_000.tar ... images_002.tar
PART = 256 << 10  # small parts, so a sample tar (~3.4 MB) is ~13 of them
FAST = FetchOptions(workers=4, part_size=PART, retry=RetryPolicy(retries=3, backoff=0.05),
                    read_timeout=5, progress_every=0.2)
TAR0 = "/google-landmark/train/images_000.tar"


def published_routes(gldv2: str) -> dict[str, str]:
    """The sample's GLDv2 files at the paths S3 publishes them under."""
    routes = {f"/google-landmark/metadata/{name}": f"{gldv2}/{name}"
              for name in ("train.csv", "train_clean.csv", "train_label_to_category.csv")}
    for i in range(TARS):
        routes[f"/google-landmark/md5sum/train/md5.images_{i:03d}.txt"] = f"{gldv2}/md5.images_{i:03d}.txt"
        routes[f"/google-landmark/train/images_{i:03d}.tar"] = f"{gldv2}/images_{i:03d}.tar"
    return routes


@pytest.fixture(scope="module")
def http_server(sample_root):
    server = FaultServer(published_routes(f"{sample_root}/gldv2")).start()
    yield server
    server.stop()


@pytest.fixture
def server(http_server):
    http_server.clear()
    yield http_server
    http_server.clear()


def gldv2_plan(server):
    return plan_gldv2(f"{server.url}/google-landmark", tars=TARS)


def staged_names(root) -> list[str]:
    return sorted(n for n in os.listdir(root) if not n.startswith("."))


def assert_identical(staging, sample_gldv2):
    names = staged_names(staging)
    assert names == sorted(n for n in os.listdir(sample_gldv2))
    for name in names:
        assert filecmp.cmp(f"{staging}/{name}", f"{sample_gldv2}/{name}", shallow=False), name


def test_clean_fetch_is_byte_identical_and_readable(server, sample_root, tmp_path):
    staging = str(tmp_path / "gldv2")
    lines = []
    summary = fetch_items(gldv2_plan(server), staging, FAST, on_progress=lambda s: lines.append(s))
    assert_identical(staging, f"{sample_root}/gldv2")
    result = summary.as_dict()
    assert result["files"] == 3 + 2 * TARS and result["fetched"] == result["files"]
    assert result["downloaded"] == result["bytes"]  # every byte once: no retries, no refetch
    # the tars were verified against their published md5 lists, the rest by the ETag
    sources = {o.name: o.md5_source for o in summary.outcomes}
    assert sources["images_001.tar"] == "md5 list md5.images_001.txt"
    assert sources["train.csv"] == "etag"
    assert not os.listdir(f"{staging}/.fetch/parts") and not os.listdir(f"{staging}/.fetch/incoming")
    final = lines[-1]
    assert final.files_done == final.files_total == 9 and final.bytes_done == final.bytes_total
    assert "files 9/9" in final.line() and "MB/s" in final.line() and "ETA 0:00:00" in final.line()

    staged = list(iter_source(open_index("gldv2", staging)))
    original = list(iter_source(open_index("gldv2", f"{sample_root}/gldv2")))
    assert len(staged) == len(original) > 0
    assert sorted(item.record.image_id for item in staged if hasattr(item, "record")) == \
        sorted(item.record.image_id for item in original if hasattr(item, "record"))


@pytest.mark.parametrize("faults", [
    pytest.param([drop(after=100_000)], id="dropped-mid-part"),
    pytest.param([None, None, drop(after=10)], id="dropped-later-part"),
    pytest.param([status(500)], id="500-once"),
    pytest.param([status(500), status(503)], id="5xx-twice"),
    pytest.param([status(429, retry_after=1)], id="429-retry-after"),
    pytest.param([None, CORRUPT], id="wrong-bytes-once"),
])
def test_faults_are_survived_and_nothing_corrupt_is_staged(server, sample_root, faults, tmp_path):
    server.script(TAR0, faults)
    staging = str(tmp_path / "gldv2")
    started = time.monotonic()
    summary = fetch_items(gldv2_plan(server), staging, FAST, on_progress=lambda s: None)
    assert_identical(staging, f"{sample_root}/gldv2")
    gets = server.requests(TAR0)
    size = os.path.getsize(f"{sample_root}/gldv2/images_000.tar")
    served = sum(g.sent for g in gets)
    if faults[-1] is CORRUPT:  # caught by the md5, then fetched again from scratch
        assert served >= 2 * size - PART
        assert summary.as_dict()["downloaded"] > summary.as_dict()["bytes"]
    else:  # a retry asks only for what is missing: no byte is served twice
        assert served == size
    if faults[0] is not None and faults[0].retry_after:
        assert time.monotonic() - started >= 1.0  # Retry-After was honoured
        assert gets[0].status == 429


def test_permanently_corrupt_file_fails_clearly_and_stages_nothing(server, sample_root, tmp_path):
    path = "/google-landmark/train/images_001.tar"
    server.always(path, CORRUPT)
    staging = str(tmp_path / "gldv2")
    with pytest.raises(FetchFailed) as failed:
        fetch_items(gldv2_plan(server), staging, FAST, on_progress=lambda s: None)
    message = str(failed.value)
    assert f"{server.url}{path}" in message and "does not match" in message and "3 fetches" in message
    assert not os.path.exists(f"{staging}/images_001.tar")
    assert not os.path.exists(f"{staging}/.fetch/incoming/images_001.tar")
    assert not os.path.exists(f"{staging}/.fetch/verified/images_001.tar.json")
    assert os.path.exists(f"{staging}/images_000.tar")  # the others were staged
    assert len([g for g in server.requests(path) if g.start == 0]) == 3


def test_corrupt_error_type_names_the_url(server, tmp_path):
    server.always(TAR0, CORRUPT)
    items = [i for i in gldv2_plan(server) if i.name in ("md5.images_000.txt", "images_000.tar")]
    with pytest.raises(FetchFailed) as failed:
        fetch_items(items, str(tmp_path), FAST, on_progress=lambda s: None)
    assert list(failed.value.failures) == [f"{server.url}{TAR0}"]
    assert CorruptFileError.__mro__[1:3]  # a FetchError and a ChecksumError


def test_rerun_after_interruption_requests_only_missing_ranges(server, sample_root, tmp_path):
    size = os.path.getsize(f"{sample_root}/gldv2/images_000.tar")
    cut = 5 * PART + 1234  # the run dies inside part 5: parts 0-4 are complete
    server.cut(TAR0, cut)
    staging = str(tmp_path / "gldv2")
    with pytest.raises(FetchFailed, match="images_000.tar"):
        fetch_items(gldv2_plan(server), staging, FAST, on_progress=lambda s: None)
    assert not os.path.exists(f"{staging}/images_000.tar")
    parts = f"{staging}/.fetch/parts/images_000.tar"
    assert sorted(p for p in os.listdir(parts) if p.isdigit()) == [f"{i:06d}" for i in range(5)]
    with open(f"{parts}/000005.tmp-deadbeef", "wb") as f:  # as a killed writer leaves it
        f.write(b"partial")

    server.clear()
    fetch_items(gldv2_plan(server), staging, FAST, on_progress=lambda s: None)
    assert_identical(staging, f"{sample_root}/gldv2")
    gets = server.requests(TAR0)
    assert min(g.start for g in gets) == 5 * PART  # nothing before the missing part was asked for
    assert sum(g.sent for g in gets) == size - 5 * PART
    assert [g.path for g in server.log if g.method == "GET" and g.path != TAR0] == []
    assert not os.path.exists(parts)


def test_rerun_of_complete_fetch_downloads_nothing(server, sample_root, tmp_path):
    staging = str(tmp_path / "gldv2")
    fetch_items(gldv2_plan(server), staging, FAST, on_progress=lambda s: None)
    server.clear()
    summary = fetch_items(gldv2_plan(server), staging, FAST, on_progress=lambda s: None)
    assert server.log == []  # not even a HEAD
    assert summary.as_dict()["already_staged"] == 9 and summary.as_dict()["downloaded"] == 0


def test_staged_file_that_fails_verification_is_fetched_again(server, sample_root, tmp_path):
    staging = str(tmp_path / "gldv2")
    fetch_items(gldv2_plan(server), staging, FAST, on_progress=lambda s: None)
    # a corrupted copy of the same size, with no record: its md5 must be checked, and fails
    with open(f"{staging}/images_001.tar", "r+b") as f:
        f.write(b"garbage")
    os.remove(f"{staging}/.fetch/verified/images_001.tar.json")
    # a truncated file whose record says otherwise
    with open(f"{staging}/train.csv", "r+b") as f:
        f.truncate(100)
    server.clear()
    summary = fetch_items(gldv2_plan(server), staging, FAST, on_progress=lambda s: None)
    assert_identical(staging, f"{sample_root}/gldv2")
    fetched = sorted(o.name for o in summary.outcomes if o.status == "fetched")
    assert fetched == ["images_001.tar", "train.csv"]


def test_unverifiable_staged_file_without_record_is_replaced(server, sample_root, tmp_path):
    """No published md5 and no record: nothing vouches for it, so it is fetched again."""
    staging = tmp_path / "gldv2"
    staging.mkdir()
    (staging / "train_clean.csv").write_text("landmark_id,images\n")
    items = [i for i in gldv2_plan(server) if i.name == "train_clean.csv"]
    fetch_items(items, str(staging), FAST, on_progress=lambda s: None)
    assert filecmp.cmp(staging / "train_clean.csv", f"{sample_root}/gldv2/train_clean.csv", shallow=False)


def test_missing_file_fails_at_once_naming_the_url(server, tmp_path):
    url = f"{server.url}/google-landmark/metadata/nope.csv"
    with pytest.raises(FetchFailed, match="nope.csv: HTTP 404"):
        fetch_items([FetchItem(url, "nope.csv")], str(tmp_path), FAST, on_progress=lambda s: None)
    assert len(server.settled("/google-landmark/metadata/nope.csv", 1, method="HEAD")) == 1  # no retries


def test_endless_503_gives_up_after_the_retries(server, tmp_path):
    server.always(TAR0, status(503))
    items = [i for i in gldv2_plan(server) if i.name in ("md5.images_000.txt", "images_000.tar")]
    with pytest.raises(FetchFailed, match="gave up after 3 retries.*HTTP 503"):
        fetch_items(items, str(tmp_path), FAST, on_progress=lambda s: None)
    assert len(server.settled(TAR0, 4)) == 4  # the last 503 is logged as its handler ends
    assert not os.path.exists(tmp_path / "images_000.tar")


def test_copy_from_a_folder_with_given_md5(sample_root, tmp_path):
    """Products-10K from a user's folder (a gs:// bucket takes the same path through storage)."""
    base = f"{sample_root}/products10k"
    with open(f"{base}/train.zip", "rb") as f:
        digest = hashlib.md5(f.read()).hexdigest()
    summary = fetch_items(plan_from_base("products10k", base, md5={"train.zip": digest}),
                          str(tmp_path / "p10k"), FAST, on_progress=lambda s: None)
    assert {o.name: o.md5_source for o in summary.outcomes} == {"train.csv": "computed", "train.zip": "given"}
    for name in ("train.csv", "train.zip"):
        assert filecmp.cmp(tmp_path / "p10k" / name, f"{base}/{name}", shallow=False)
    assert len(list(iter_source(open_index("products10k", str(tmp_path / "p10k"))))) > 0

    with pytest.raises(FetchFailed, match="does not match 0{32} \\(given\\)"):
        fetch_items(plan_from_base("products10k", base, md5={"train.zip": "0" * 32}),
                    str(tmp_path / "other"), FAST, on_progress=lambda s: None)


def test_glob_names_expand_from_a_folder_base(sample_root):
    items = plan_from_base("imagenet", f"{sample_root}/imagenet", files=["*.txt", "*.csv"])
    assert sorted(i.name for i in items) == ["LOC_synset_mapping.txt", "LOC_val_solution.csv"]


def test_bad_plans_are_refused_clearly():
    with pytest.raises(ValueError, match="cannot be listed"):
        plan_from_base("imagenet", "https://example.org/imagenet", files=["train/*"])
    with pytest.raises(ValueError, match="unknown source"):
        plan_from_base("coco", "/data")
    with pytest.raises(ValueError, match="not in the products10k file list"):
        plan_from_base("products10k", "/data", md5={"test.zip": "0" * 32})
    with pytest.raises(ValueError, match="relative path"):
        FetchItem("http://x/a", "../a")
    with pytest.raises(ValueError, match="within 0..999"):
        plan_gldv2(tars=0)
    with pytest.raises(ValueError, match="md5 can be given for products10k and imagenet only"):
        plan_sources(md5={"gldv2": {"train.csv": "0" * 32}})
    with pytest.raises(ValueError, match="nothing to fetch"):
        plan_sources(gldv2=None)


def test_sources_are_planned_when_their_base_is_given(sample_root):
    plans = plan_sources(gldv2=None, imagenet=f"{sample_root}/imagenet", imagenet_files=["*.txt"])
    assert list(plans) == ["imagenet"] and [i.name for i in plans["imagenet"]] == ["LOC_synset_mapping.txt"]
    assert sorted(plan_sources(gldv2_tars=2, products10k="/data")) == ["gldv2", "products10k"]


def test_gldv2_plan_uses_the_published_urls():
    items = {i.name: i for i in plan_gldv2(tars=500)}
    assert len(items) == 3 + 1000
    assert items["images_499.tar"].url == "https://s3.amazonaws.com/google-landmark/train/images_499.tar"
    assert items["images_499.tar"].md5_list == "md5.images_499.txt"
    assert items["md5.images_000.txt"].url == \
        "https://s3.amazonaws.com/google-landmark/md5sum/train/md5.images_000.txt"
    assert items["train_clean.csv"].url == "https://s3.amazonaws.com/google-landmark/metadata/train_clean.csv"


def test_retry_after_forms():
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(None) is None
    assert 0 <= parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") <= 0.0  # a date in the past
    assert RetryPolicy(retry_after_cap=10).delay(1, retry_after=3600) == 10
    assert all(0 <= RetryPolicy(backoff=1, backoff_cap=4).delay(9) <= 4 for _ in range(50))


# --- hostile servers: lying sizes, changing files, web pages, redirects, drips, full disks ---

def bare_item(server, path: str, name: str) -> FetchItem:
    """No md5 published and no ETag trusted (Products-10K from an http base): only
    the fetcher's own checks stand between the server and the staged file."""
    return FetchItem(f"{server.url}{path}", name)


def test_head_that_understates_the_size_never_stages_a_truncated_file(server, sample_root, tmp_path):
    local = f"{sample_root}/gldv2/images_000.tar"
    size = os.path.getsize(local)
    server.understate(TAR0, size - 3 * PART - 100)  # every 206 still says /<true size>
    warnings = []
    summary = fetch_items([bare_item(server, TAR0, "images_000.tar")], str(tmp_path), FAST,
                          on_progress=lambda s: None, warn=warnings.append)
    assert filecmp.cmp(tmp_path / "images_000.tar", local, shallow=False)
    assert summary.outcomes[0].size == size
    assert any(f"{server.url}{TAR0}" in w and f"size {size - 3 * PART - 100} -> {size}" in w for w in warnings)


@pytest.mark.parametrize("if_match", ["honour", "ignore"], ids=["412-on-if-match", "etag-compared"])
def test_file_replaced_between_parts_is_fetched_again_whole(server, sample_root, tmp_path, if_match):
    local = f"{sample_root}/gldv2/images_000.tar"
    with open(local, "rb") as f:
        data = bytearray(f.read())
    data[-PART:-PART + 5000] = bytes(b ^ 0xFF for b in data[-PART:-PART + 5000])  # same size, other
    # bytes in the last part: only the ETag tells the versions apart
    newer = tmp_path / "images_000.v2.tar"
    newer.write_bytes(data)
    server.replace(TAR0, str(newer), after_gets=3)  # parts 0-2 of the old version, then the new one
    server.if_match = if_match
    warnings = []
    summary = fetch_items([bare_item(server, TAR0, "images_000.tar")], str(tmp_path / "staging"), FAST,
                          on_progress=lambda s: None, warn=warnings.append)
    assert (tmp_path / "staging" / "images_000.tar").read_bytes() == bytes(data)  # not stitched
    assert summary.outcomes[0].md5 == hashlib.md5(data).hexdigest()
    gets = server.requests(TAR0)
    assert [g.start for g in gets].count(0) == 2  # started over from byte 0
    assert (gets[3].status == 412) == (if_match == "honour")
    assert any("again from scratch" in w and f"{server.url}{TAR0}" in w for w in warnings)


def test_server_that_refuses_every_if_match_is_still_fetched(server, sample_root, tmp_path):
    server.if_match = "refuse"  # 412 even for the ETag its own HEAD states
    warnings = []
    fetch_items([bare_item(server, TAR0, "images_000.tar")], str(tmp_path), FAST,
                on_progress=lambda s: None, warn=warnings.append)
    assert filecmp.cmp(tmp_path / "images_000.tar", f"{sample_root}/gldv2/images_000.tar", shallow=False)
    assert [g.status for g in server.requests(TAR0)][:2] == [412, 206]  # asked once, then no more
    assert len(warnings) == 1 and "HTTP 412" in warnings[0]


HTML = b"<!DOCTYPE html>\n<html><head><title>Sign in</title></head><body>Please log in</body></html>\n"


@pytest.mark.parametrize("name, content_type, came", [
    ("train.zip", "text/html; charset=utf-8", "Content-Type text/html"),
    ("train.zip", "application/octet-stream", "<!DOCTYPE html>"),  # a server that lies about the type
    ("train.csv", "text/html", "<!DOCTYPE html>"),
])
def test_web_page_is_never_staged_as_the_file(server, tmp_path, name, content_type, came):
    page = tmp_path / "login.html"
    page.write_bytes(HTML)
    path = f"/products10k/login/{name}"
    server.add(path, str(page), content_type)
    staging = tmp_path / "staging"
    with pytest.raises(FetchFailed) as failed:
        fetch_items([bare_item(server, path, name)], str(staging), FAST, on_progress=lambda s: None)
    why = failed.value.failures[f"{server.url}{path}"]
    assert f"{server.url}{path}" in why and came in why and "nothing was staged" in why
    assert ("zip archive" if name.endswith(".zip") else "text file") in why
    assert not (staging / name).exists() and not (staging / ".fetch" / "parts" / name).exists()
    if content_type.startswith("text/html") and name.endswith(".zip"):
        assert server.requests(path) == []  # refused on the HEAD: not a byte fetched


def test_staged_record_is_tied_to_its_url(server, sample_root, tmp_path):
    """A file staged from one URL is not 'already staged' for another URL (the right one)."""
    right = "/products10k/train.csv"
    server.add(right, f"{sample_root}/products10k/train.csv", "text/csv")
    staging = str(tmp_path)
    fetch_items([bare_item(server, "/google-landmark/metadata/train.csv", "train.csv")], staging, FAST,
                on_progress=lambda s: None)
    summary = fetch_items([bare_item(server, right, "train.csv")], staging, FAST, on_progress=lambda s: None)
    assert summary.outcomes[0].status == "fetched"
    assert filecmp.cmp(tmp_path / "train.csv", f"{sample_root}/products10k/train.csv", shallow=False)
    record = (tmp_path / ".fetch" / "verified" / "train.csv.json").read_text()
    assert f'"url": "{server.url}{right}"' in record and '"etag": "\\"' in record


def test_first_bytes_must_be_what_the_name_says():
    import io
    import tarfile
    import zipfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        tar.addfile(tarfile.TarInfo("a.jpg"), io.BytesIO(b""))
    ustar = buffer.getvalue()[:512]
    v7 = bytearray(ustar)
    v7[257:265] = bytes(8)  # no magic: an old-style header, valid by its checksum alone
    v7[148:156] = b"        "
    v7[148:156] = f"{sum(v7):06o}\0 ".encode()
    empty_zip = io.BytesIO()
    zipfile.ZipFile(empty_zip, "w").close()
    good = [("a.tar", ustar), ("a.tar", bytes(v7)), ("a.zip", b"PK\x03\x04rest"), ("a.zip", empty_zip.getvalue()),
            ("a.tar.gz", b"\x1f\x8b\x08"), ("a.csv", "\ufeffid,name\n1,é".encode()), ("a.csv", b"id,caf\xe9\n"),
            ("a.txt", b""), ("photo.JPEG", HTML)]
    bad = [("a.tar", HTML.ljust(512)), ("a.tar", bytes(v7[:148]) + b"0000000\0" + bytes(v7[156:])),
           ("a.zip", b""), ("a.tgz", b"PK\x03\x04"), ("a.csv", b"  <html><body>"),
           ("a.csv", b'<?xml version="1.0"?><Error><Code>AccessDenied</Code></Error>'), ("a.txt", b"\x00\x01\x02")]
    for name, head in good:
        check_head("http://x/" + name, name, head, None)
    for name, head in bad:
        with pytest.raises(WrongContentError, match=f"http://x/{name}: expected a"):
            check_head("http://x/" + name, name, head, "application/octet-stream")


def test_redirect_to_another_host_is_logged(server, sample_root, tmp_path):
    target = f"http://localhost:{server.url.rsplit(':', 1)[1]}/google-landmark/metadata/train.csv"
    server.redirect("/moved/train.csv", target)
    warnings = []
    fetch_items([bare_item(server, "/moved/train.csv", "train.csv")], str(tmp_path), FAST,
                on_progress=lambda s: None, warn=warnings.append)
    assert filecmp.cmp(tmp_path / "train.csv", f"{sample_root}/gldv2/train.csv", shallow=False)
    told = [w for w in warnings if "redirected" in w]
    assert len(told) == 1 and "host 127.0.0.1 to host localhost" in told[0]


def test_no_room_for_the_announced_size_is_refused_before_a_byte(server, tmp_path):
    options = FetchOptions(part_size=PART, free_space_margin=1 << 60)  # no disk has an exabyte free
    with pytest.raises(NotEnoughSpace, match=f"{tmp_path}/staging: not enough free space: 1 file"):
        fetch_items([bare_item(server, TAR0, "images_000.tar")], str(tmp_path / "staging"), options,
                    on_progress=lambda s: None)
    assert server.settled(TAR0, 1, method="HEAD") and server.requests(TAR0) == []


DRIP = drip(every=0.05, size=200, for_s=4)  # 4 kB/s: never a read timeout, never done in time
SLOW = FetchOptions(workers=1, part_size=PART, retry=RetryPolicy(retries=1, backoff=0.05),
                    min_rate=100_000, rate_window=0.3, progress_every=0.2)


def test_drip_fed_transfer_is_dropped_and_resumed(server, sample_root, tmp_path):
    server.script(TAR0, [DRIP])
    started = time.monotonic()
    fetch_items([bare_item(server, TAR0, "images_000.tar")], str(tmp_path), SLOW, on_progress=lambda s: None)
    assert time.monotonic() - started < DRIP.for_s
    assert filecmp.cmp(tmp_path / "images_000.tar", f"{sample_root}/gldv2/images_000.tar", shallow=False)
    parts = -(-os.path.getsize(f"{sample_root}/gldv2/images_000.tar") // PART)
    first, second = server.settled(TAR0, parts + 1)[:2]  # one GET per part, and the dropped one
    # the drip was dropped after a few hundred bytes; the retry asked only for the rest
    assert first.start == 0 and 0 < second.start <= first.sent < 10_000


def test_endless_drip_gives_up_naming_the_url(server, tmp_path):
    server.always(TAR0, DRIP)
    with pytest.raises(FetchFailed, match="gave up after 1 retries.*under the floor of 100000 B/s"):
        fetch_items([bare_item(server, TAR0, "images_000.tar")], str(tmp_path), SLOW, on_progress=lambda s: None)
    assert len(server.settled(TAR0, 2)) == 2 and not (tmp_path / "images_000.tar").exists()


@pytest.mark.slow
def test_flow_fetches_on_a_prefect_server_with_progress(prefect_api, server, sample_root, tmp_path):
    """The fetch-sources flow on a real temporary Prefect server: one task per source,
    progress lines in the run's log, a progress artifact per source at 100 %."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        LogFilter,
        LogFilterFlowRunId,
    )
    from prefect.logging.handlers import APILogHandler

    from unibed.flows.fetch_sources import fetch_sources_flow

    server.script(TAR0, [None, status(500), drop(after=1000)])
    staging = str(tmp_path / "staging")
    state = fetch_sources_flow(
        staging=staging, gldv2_url=f"{server.url}/google-landmark", gldv2_tars=TARS,
        products10k_url=f"{sample_root}/products10k", part_size_mb=PART / (1 << 20),
        progress_every=0.5, return_state=True)
    result = state.result()
    assert result["gldv2"]["fetched"] == 9 and result["products10k"]["fetched"] == 2
    run_id = state.state_details.flow_run_id
    APILogHandler().flush()  # run logs reach the server in batches
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id])))
        messages = ""
        for _ in range(30):  # and the server stores them a moment later
            logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))
            messages = "\n".join(log.message for log in logs)
            if "gldv2: " in messages and "products10k: " in messages:
                break
            time.sleep(1)
    progress = {a.key: a.data for a in artifacts if a.type == "progress"}
    assert progress == {"fetch-gldv2": 100.0, "fetch-products10k": 100.0}
    assert "files 9/9" in messages and "MB/s" in messages and "files 2/2" in messages

    again = fetch_sources_flow(staging=staging, gldv2_url=f"{server.url}/google-landmark",
                               gldv2_tars=TARS, products10k_url=f"{sample_root}/products10k")
    assert again["gldv2"]["already_staged"] == 9 and again["gldv2"]["downloaded"] == 0
    assert_identical(f"{staging}/gldv2", f"{sample_root}/gldv2")


@pytest.mark.slow
def test_fetch_into_gcs_resumes_and_composes(server, sample_root, gcs_emulator):
    """Staging in gs:// (a real local GCS server): parts are objects, joined by
    compose in rounds (64 KiB parts: 52 for the tar, over the 32 one compose takes);
    an interrupted run resumes by ranges; wrong bytes never reach the final name."""
    from unibed.dataplane import storage

    gcs_emulator.create_bucket("unibed-staging")
    staging = "gs://unibed-staging/gldv2"
    options = FetchOptions(workers=4, part_size=64 << 10, retry=RetryPolicy(retries=1, backoff=0.05),
                           read_timeout=5, progress_every=0.5)
    items = plan_gldv2(f"{server.url}/google-landmark", tars=1)  # one tar keeps the emulator quick
    server.cut(TAR0, 10 * (64 << 10) + 99)
    with pytest.raises(FetchFailed, match="images_000.tar"):
        fetch_items(items, staging, options, on_progress=lambda s: None)
    assert not storage.exists(f"{staging}/images_000.tar")
    server.clear()
    server.script(TAR0, [None] * 20 + [CORRUPT])  # a part of the resumed run comes back wrong
    summary = fetch_items(items, staging, options, on_progress=lambda s: None)
    gets = server.requests(TAR0)
    parts = -(-os.path.getsize(f"{sample_root}/gldv2/images_000.tar") // (64 << 10))
    resumed = parts - 10
    assert [g.start for g in gets[:resumed]] == [i * (64 << 10) for i in range(10, parts)]  # by ranges
    assert [g.start for g in gets[resumed:]] == [i * (64 << 10) for i in range(parts)]  # md5 mismatch:
    # every part fetched again from scratch
    assert {o.name: o.status for o in summary.outcomes}["images_000.tar"] == "fetched"
    local = f"{sample_root}/gldv2"
    for item in items:
        with open(f"{local}/{item.name}", "rb") as f:
            assert storage.read_bytes(f"{staging}/{item.name}") == f.read(), item.name
    assert storage.list_files(f"{staging}/.fetch/parts/**") == []
    assert storage.list_files(f"{staging}/.fetch/incoming/**") == []  # compose temporaries too
    assert len(list(iter_source(open_index("gldv2", staging)))) > 0


@pytest.mark.slow
def test_cli_fetch_failure_is_one_line_per_file_and_exit_2(prefect_api, server, tmp_path, capsys):
    from unibed.cli.main import main

    base = f"{server.url}/nowhere"
    code = main(["fetch", str(tmp_path), "--no-gldv2", "--products10k", base, "--retries", "0"])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("unibed:")]
    assert code == 2
    assert lines == [f"unibed: fetch failed: {tmp_path}/products10k/{name}: HEAD {base}/{name}: HTTP 404 Not Found"
                     for name in ("train.csv", "train.zip")]
