"""Realistic, distinct identifiers and names in each dataset's own style, from one seeded stream."""

from __future__ import annotations

import hashlib
from urllib.parse import quote, unquote

import numpy as np

CATEGORY_PREFIX = "http://commons.wikimedia.org/wiki/Category:"

_PLACES = ("Aldbrook", "Bergheim", "Castellón", "Dunmore", "Eskilstuna", "Fjällbacka",
           "Hallstatt", "Île-Rousse", "Jelenia_Góra", "Kraków", "Lindau", "Mérida", "Nantua",
           "Porto", "Pécs", "Quimper", "Ronda", "Sintra", "Třeboň", "Uppsala", "Vézelay",
           "Wrocław", "Ystad", "Zadar")
_SAINTS = ("St._Anne's", "St._Mary's", "St._Nicholas'", "Holy_Cross", "St._George's")


class Identifiers:
    """Hands out ids that look like the real datasets' and never repeats one."""

    def __init__(self, rng: np.random.Generator):
        self._rng = rng
        self._used: dict[str, set] = {}

    def _fresh(self, kind: str, draw):
        used = self._used.setdefault(kind, set())
        while (value := draw()) in used:
            pass
        used.add(value)
        return value

    def wnid(self) -> str:
        return self._fresh("wnid", lambda: f"n0{self._rng.integers(1_000_000, 5_000_000):07d}")

    def products_class(self) -> int:
        return self._fresh("products class", lambda: int(self._rng.integers(0, 9691)))

    def products_group(self) -> int:
        # groups are shared by several SKUs, so these may repeat
        return int(self._rng.integers(0, 360))

    def landmark_id(self) -> int:
        return self._fresh("landmark", lambda: int(self._rng.integers(0, 203094)))

    def category_url(self, kinds: tuple[str, ...]) -> str:
        """A Wikimedia Commons category for a building of one of `kinds`, percent-encoded."""
        def draw() -> str:
            kind, place = self._rng.choice(kinds), self._rng.choice(_PLACES)
            match self._rng.integers(3):
                case 0:
                    name = f"{kind}_of_{place}"
                case 1:
                    name = f"{place}_{kind}"
                case _:
                    name = f"{self._rng.choice(_SAINTS)}_{kind}_({place})"
            return CATEGORY_PREFIX + quote(name, safe="_(),")
        return self._fresh("category", draw)

    def image_id(self, source: str, label: str | None) -> str:
        """A new image id of `source` (ImageNet train ids embed the wnid)."""
        match source:
            case "imagenet":
                return self._fresh(source, lambda: f"{label}_{self._rng.integers(1, 15000)}")
            case "products10k":
                return self._fresh(source, lambda: f"{self._rng.integers(0, 141931)}.jpg")
            case "gldv2":
                return self._fresh(source, lambda: self._rng.bytes(8).hex())
        raise ValueError(f"unknown source {source!r}")

    def imagenet_val_id(self) -> str:
        return self._fresh("imagenet", lambda: f"ILSVRC2012_val_{self._rng.integers(1, 50001):08d}")


def category_name(url: str) -> str:
    """The landmark's name as a reader derives it from the category URL."""
    return unquote(url.removeprefix(CATEGORY_PREFIX)).replace("_", " ")


def gldv2_photo_url(category_url: str, image_id: str) -> str:
    """An upload.wikimedia.org URL, with Wikimedia's md5-of-file-name folders."""
    file_name = f"{unquote(category_url.removeprefix(CATEGORY_PREFIX))}_{image_id[:6]}.jpg"
    md5 = hashlib.md5(file_name.encode("utf-8")).hexdigest()
    return f"https://upload.wikimedia.org/wikipedia/commons/{md5[0]}/{md5[:2]}/{quote(file_name)}"
