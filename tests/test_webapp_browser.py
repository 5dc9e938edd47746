"""`unibed serve` as a real server process, driven by a real headless Chromium.

Debian's chromium + chromedriver (installed by `make setup`'s system-deps);
skipped only when /usr/bin/chromium is absent.
"""

from __future__ import annotations

import csv
import http.client
import os
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
from PIL import Image
from test_retrieval import export_projection_model, stored_images

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
TOP_K = 6
UPLOAD_MB = 2

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM) or not os.path.exists(CHROMEDRIVER),
                                reason=f"needs Debian's chromium and chromium-driver ({CHROMIUM}, {CHROMEDRIVER}): "
                                       "make system-deps")


def _serve_command() -> list[str]:
    """`unibed serve` once unibed/cli/main.py has it, else the same subcommand from its module."""
    from unibed.cli.main import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    if "serve" in sub.choices:
        return [os.path.join(os.path.dirname(sys.executable), "unibed"), "serve"]
    return [sys.executable, "-m", "unibed.cli.search", "serve"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(sample_build, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serve")
    model = export_projection_model(str(tmp / "model"))
    port = _free_port()
    with open(tmp / "server.log", "w+") as log:
        proc = subprocess.Popen(
            [*_serve_command(), "--model", model, "--gallery", sample_build.output, "--port", str(port),
             "--cache-dir", str(tmp / "cache"), "-k", str(TOP_K), "--max-upload-mb", str(UPLOAD_MB)],
            stdout=log, stderr=subprocess.STDOUT, cwd=os.path.dirname(os.path.dirname(__file__)))
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 240  # TensorFlow's import and the index build, on a busy machine
        while True:
            try:
                with urllib.request.urlopen(base + "/", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                log.seek(0)
                pytest.fail(f"server did not come up:\n{log.read()[-3000:]}")
            time.sleep(1)
        yield base, proc
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(120)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def uploads(sample_build, tmp_path_factory):
    """A gallery image, and the bad uploads: text, empty, a pixel bomb, too many bytes."""
    tmp = tmp_path_factory.mktemp("uploads")
    image_id, label, jpeg = stored_images(sample_build.output, "train")[7]
    files = {"good": tmp / "gallery-image.jpg", "text": tmp / "notes.jpg", "empty": tmp / "empty.png",
             "bomb": tmp / "bomb.png", "huge": tmp / "huge.jpg"}
    files["good"].write_bytes(jpeg)
    files["text"].write_text("this is text, whatever its name says")
    files["empty"].write_bytes(b"")
    Image.new("1", (20000, 20000)).save(files["bomb"], optimize=True)  # 400 Mpx in ~50 KB
    files["huge"].write_bytes(np.random.default_rng(0).bytes((UPLOAD_MB + 1) << 20))
    return {"id": image_id, "label": label, **{k: str(v) for k, v in files.items()}}


def _upload(driver, base, path):
    from selenium.webdriver.common.by import By

    driver.get(base + "/")
    driver.find_element(By.ID, "upload").send_keys(path)
    _submit(driver)


def _submit(driver, timeout=60):
    """Click submit and wait for the next page to load. The old page's
    readyState is already "complete", so mark its window and wait until a
    document without the mark has loaded."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.by import By

    driver.execute_script("window.__unibedOldPage = true;")
    driver.find_element(By.ID, "submit").click()
    deadline = time.monotonic() + timeout
    while True:
        try:  # mid-navigation the driver may answer with an error: ask again
            if driver.execute_script("return !window.__unibedOldPage && document.readyState === 'complete';"):
                return
        except WebDriverException:
            pass
        assert time.monotonic() < deadline, "the page after submit did not load"
        time.sleep(0.1)


def _wait_loaded(driver, timeout=60):
    deadline = time.monotonic() + timeout
    while driver.execute_script("return document.readyState") != "complete":
        assert time.monotonic() < deadline, "page did not finish loading"
        time.sleep(0.1)


def _loaded_images(driver, css):
    """(total, loaded) <img> elements matching css, after they settle."""
    script = (f"const imgs=[...document.querySelectorAll({css!r})];"
              "return [imgs.length, imgs.filter(i => i.complete && i.naturalWidth > 0).length,"
              " imgs.filter(i => !i.complete).length];")
    deadline = time.monotonic() + 60
    while True:
        total, loaded, pending = driver.execute_script(script)
        if not pending or time.monotonic() > deadline:
            return total, loaded
        time.sleep(0.2)


def test_upload_of_a_gallery_image_shows_its_matches(server, browser, uploads, sample_build):
    from selenium.webdriver.common.by import By

    base, _ = server
    _upload(browser, base, uploads["good"])
    assert not browser.find_elements(By.ID, "error")
    matches = browser.find_elements(By.CSS_SELECTOR, "#results figure.match")
    assert len(matches) == TOP_K
    first = matches[0].text
    # the uploaded image is in the gallery: it is its own nearest match, with its label
    label_name = _label_names(sample_build.output)[uploads["label"]]
    assert uploads["id"] in first and label_name in first and "d=0.0000" in first
    assert all(m.find_element(By.CSS_SELECTOR, ".source").text for m in matches)
    total, loaded = _loaded_images(browser, "#results img")
    assert total == TOP_K + 1 and loaded == total  # the query and every match thumbnail


def test_bad_uploads_show_an_error_and_the_server_keeps_serving(server, browser, uploads):
    from selenium.webdriver.common.by import By

    base, proc = server
    expected = {"text": "not an image", "empty": "empty file", "bomb": "too many pixels",
                "huge": "too large"}
    for kind, message in expected.items():
        _upload(browser, base, uploads[kind])
        errors = browser.find_elements(By.ID, "error")
        assert errors and message in errors[0].text, (kind, browser.page_source[:2000])
        assert not browser.find_elements(By.ID, "results")
        # and the next good upload still works
        _upload(browser, base, uploads["good"])
        assert len(browser.find_elements(By.CSS_SELECTOR, "#results figure.match")) == TOP_K, kind
    browser.get(base + "/")
    _submit(browser)  # no file chosen
    assert "No file chosen" in browser.find_element(By.ID, "error").text
    assert proc.poll() is None


def test_picking_a_gallery_image_searches_with_it(server, browser):
    from selenium.webdriver.common.by import By

    base, _ = server
    browser.get(base + "/")
    picks = browser.find_elements(By.CSS_SELECTOR, "#picks a")
    assert len(picks) >= 10
    picked = picks[3].find_element(By.TAG_NAME, "img").get_attribute("alt")
    picks[3].click()
    _wait_loaded(browser)
    matches = browser.find_elements(By.CSS_SELECTOR, "#results figure.match")
    assert len(matches) == TOP_K
    assert all(picked not in m.text for m in matches)  # the query itself is left out


def test_duplicates_page_shows_loaded_thumbnails(server, browser, sample_build):
    from selenium.webdriver.common.by import By

    base, _ = server
    with open(os.path.join(sample_build.output, "duplicates.csv")) as f:
        rows = list(csv.DictReader(f))
    assert rows, "the sample build should drop duplicates"
    browser.get(base + "/duplicates")
    _wait_loaded(browser)
    groups = browser.find_elements(By.CSS_SELECTOR, ".group")
    assert len(groups) == len({r["kept"] for r in rows})
    assert not browser.find_elements(By.CSS_SELECTOR, ".placeholder"), browser.page_source[:3000]
    total, loaded = _loaded_images(browser, ".group img")
    assert total == len(rows) + len(groups)  # every dropped image and every kept one
    assert loaded == total
    text = browser.find_element(By.TAG_NAME, "body").text
    assert all(r["dropped"] in text for r in rows)
    assert "distance" in text


def test_rejects_and_summary_pages(server, browser, sample_build):
    from selenium.webdriver.common.by import By

    base, _ = server
    browser.get(base + "/summary")
    _wait_loaded(browser)
    assert browser.find_element(By.ID, "num-classes").text == str(sample_build.manifest.num_classes)
    class_rows = browser.find_elements(By.CSS_SELECTOR, "#classes tr")
    assert len(class_rows) == sample_build.manifest.num_classes + 1
    accounting = [r.text for r in browser.find_elements(By.CSS_SELECTOR, "#accounting tr")[1:]]
    manifest = sample_build.manifest
    assert sorted(accounting) == sorted(
        f"{s} {manifest.label_ranges[s][0]}-{manifest.label_ranges[s][1]} {a.inputs} {a.written} {a.duplicates} "
        f"{a.rejected} {a.not_selected}" for s, a in manifest.accounting.items())
    with open(os.path.join(sample_build.output, "rejects.csv")) as f:
        rejects = list(csv.DictReader(f))
    browser.get(base + "/rejects")
    _wait_loaded(browser)
    rows = browser.find_elements(By.CSS_SELECTOR, "#rejects tr")
    assert len(rows) == len(rejects) + 1
    assert {r["reason"] for r in rejects} <= set(browser.find_element(By.ID, "rejects").text.split())


def test_requests_cannot_reach_files_outside_the_gallery(server):
    base, proc = server
    host, port = base.removeprefix("http://").split(":")
    for path in ("/thumb/..%2F..%2F..%2Fetc%2Fpasswd", "/thumb/../../../etc/passwd", "/thumb/%2Fetc%2Fpasswd",
                 "/thumb//etc/passwd", "/search?id=../../../etc/passwd"):
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        conn.request("GET", path)  # sent as is: no client-side normalisation of '..'
        response = conn.getresponse()
        body = response.read()
        conn.close()
        assert response.status == 404, path
        assert b"root:" not in body
    assert proc.poll() is None


def _label_names(build_dir: str) -> list[str]:
    from unibed.schemas.label_map import LabelMap

    with open(os.path.join(build_dir, "label_map.csv")) as f:
        return [e.name for e in LabelMap.from_csv(f.read()).entries]

