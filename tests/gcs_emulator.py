"""A real local GCS server for tests: `gcp-storage-emulator` in a subprocess.

(Started through tests/gcs_emulator_server.py, which adds the `ifGenerationMatch`
precondition on uploads that the emulator lacks and real GCS has.)

`google-cloud-storage` and Beam's gcsio (which builds a storage.Client) both
talk to it once STORAGE_EMULATOR_HOST is set, so production code runs
unchanged against it. The environment this sets is inherited by every
subprocess the tests start, Beam's multi-process workers included.

Credentials: without any, google.auth.default() spends ~25 s per process
probing the metadata server (REFERENCE section 7). A fake authorized_user
file with a far-future access token resolves at once and never refreshes;
the emulator ignores the token.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

PROJECT = "unibed-test"

_FAKE_CREDENTIALS = {
    "type": "authorized_user",
    "client_id": "unibed-test.apps.googleusercontent.com",
    "client_secret": "unibed-test",
    "refresh_token": "unibed-test",
    "token": "unibed-test-token",
    "expiry": "2999-01-01T00:00:00Z",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class GcsEmulator:
    """One running emulator; `env` is what a process needs to reach it."""

    host: str
    process: subprocess.Popen
    env: dict[str, str]
    _workdir: str = field(repr=False, default="")

    def create_bucket(self, name: str) -> str:
        from google.cloud import storage as gcs

        client = gcs.Client(project=PROJECT)
        if client.lookup_bucket(name) is None:
            client.create_bucket(name)
        return f"gs://{name}"

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self._workdir, ignore_errors=True)


def start_emulator(timeout: float = 60.0) -> GcsEmulator:
    """Start the emulator on a free port, wait until it answers, export its env."""
    workdir = tempfile.mkdtemp(prefix="unibed-gcs-")
    credentials = Path(workdir, "credentials.json")
    credentials.write_text(json.dumps(_FAKE_CREDENTIALS))
    port = _free_port()
    host = f"http://127.0.0.1:{port}"
    # the emulator's own CLI, plus the upload preconditions it lacks (see that file)
    launcher = Path(__file__).with_name("gcs_emulator_server.py")
    process = subprocess.Popen(
        [sys.executable, str(launcher), "start", "--host", "127.0.0.1", "--port", str(port), "--in-memory", "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=open(Path(workdir, "emulator.log"), "wb"),  # noqa: SIM115 - lives as long as the server
    )
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(
                f"gcp-storage-emulator exited with {process.returncode}: "
                + Path(workdir, "emulator.log").read_text()[-2000:]
            )
        try:
            with urllib.request.urlopen(f"{host}/storage/v1/b?project={PROJECT}", timeout=2):
                break
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            if time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"gcp-storage-emulator did not answer on {host} in {timeout}s") from None
            time.sleep(0.2)
    env = {
        "STORAGE_EMULATOR_HOST": host,
        "GOOGLE_APPLICATION_CREDENTIALS": str(credentials),
        "GOOGLE_CLOUD_PROJECT": PROJECT,
    }
    os.environ.update(env)
    return GcsEmulator(host, process, env, workdir)


def upload_tree(local_root: str, url: str) -> str:
    """Copy every file under `local_root` to the gs:// prefix `url`; returns `url`."""
    from google.cloud import storage as gcs

    bucket_name, _, prefix = url.removeprefix("gs://").partition("/")
    bucket = gcs.Client(project=PROJECT).bucket(bucket_name)
    root = Path(local_root)
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        name = "/".join(filter(None, [prefix.rstrip("/"), path.relative_to(root).as_posix()]))
        bucket.blob(name).upload_from_filename(str(path))
    return url
