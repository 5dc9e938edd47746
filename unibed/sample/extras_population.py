"""What the extended sample's three extra sources hold, in memory: every
input with its listing row, its bytes and its expected fate (unibed/sample/extras.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

from unibed.dataplane import storage
from unibed.sample.encoding import decode_rgb, encode_jpeg
from unibed.sample.painter import Job, Painter
from unibed.sample.phash import NEAR_DUPLICATE_MAX_DISTANCE, PerceptualSpacing, distance, hashes_of
from unibed.sample.scene_objects import object_styles
from unibed.sample.scene_products import package_styles
from unibed.sample.seeding import rng_for

# Food-101's first classes (meta/classes.txt, meta/labels.txt) and SOP's super classes
FOODS = (("apple_pie", "Apple pie"), ("baby_back_ribs", "Baby back ribs"), ("baklava", "Baklava"),
         ("beef_carpaccio", "Beef carpaccio"), ("beef_tartare", "Beef tartare"), ("beet_salad", "Beet salad"))
SOP_SUPER = ("bicycle", "cabinet", "chair", "coffee_maker", "fan", "kettle")
TITLES = ("Paket Hemat Sabun Mandi, 3 pcs", "Kaos Polos Cotton Combed 30s", "Botol Minum 1 Liter \"BPA Free\"",
          "Serum Wajah Vitamin C", "Tas Selempang Pria, Kanvas", "Lampu LED 12 Watt")


@dataclass(frozen=True)
class ExtrasConfig:
    seed: int = 0
    sop_classes: int = 3  # train classes; one more class is SOP's test split
    sop_images_per_class: int = 3
    food_classes: int = 3
    food_train_per_class: int = 3
    food_test_per_class: int = 1
    shopee_groups: int = 3
    shopee_images_per_group: int = 3


@dataclass
class ExtraImage:
    source: str
    image_id: str  # the reader's id: the path under the source root ("" for a row naming none)
    label: str | None  # None: no listing row labels it
    data: bytes | None  # None: no file holds it
    row: tuple[str, ...] | None = None  # its listing row (None: unlisted)
    split: str = "train"
    expected: str = "ok"
    reject_reason: str | None = None
    duplicate_group: int | None = None
    selected: bool = True  # False: listed in a split the sample recipe does not read


@dataclass(frozen=True)
class ExtraGroup:
    id: int
    kind: str  # "exact" | "near"
    members: tuple[str, ...]  # original key first
    match: str  # what duplicates.csv should say
    cross_source: bool = True


@dataclass
class Extras:
    inputs: list[ExtraImage] = field(default_factory=list)
    groups: list[ExtraGroup] = field(default_factory=list)
    class_names: dict[str, dict[str, str]] = field(default_factory=dict)

    def of(self, source: str) -> list[ExtraImage]:
        return [im for im in self.inputs if im.source == source]


def _base_originals(base: dict, base_root: str, count: int) -> list[tuple[str, bytes]]:
    """(key, bytes) of the first plain Products-10K images of the default sample
    (kept by its build). One seed source is enough to plant new-vs-old copies,
    and lets a test build the new sources beside it alone."""
    entries = [e for e in base["images"] if e["source"] == "products10k" and e["expected"] == "ok"
               and e["quirk"] is None and e["duplicate_group"] is None and e["split"] == "train"]
    return [(f"products10k/{e['image_id']}", storage.read_bytes(storage.join(base_root, "products10k", "train",
                                                                              e["image_id"])))
            for e in entries[:count]]


def _paint(painter: Painter, renderer: str, styles: list, labels: list[str], per_class: int, prefix: str):
    """per_class paintings of each label, drawn by a seed source's renderer, as (label, bytes)."""
    jobs = [(label, Job(renderer, f"{prefix}/{label}/{i}", style))
            for label, style in zip(labels, styles) for i in range(per_class)]
    paintings = painter.paint_all([job for _, job in jobs])
    return [(label, p.data) for (label, _), p in zip(jobs, paintings, strict=True)]


def _plant(extras: Extras, kind: str, original: str, copy: ExtraImage, match: str) -> None:
    group = len(extras.groups)
    extras.groups.append(ExtraGroup(group, kind, (original, f"{copy.source}/{copy.image_id}"), match))
    copy.expected, copy.duplicate_group = "duplicate", group


def _sop(extras: Extras, config: ExtrasConfig, painter: Painter) -> None:
    classes = config.sop_classes + 1  # the last is the test split's
    styles = package_styles(rng_for(config.seed, "products10k", "styles"), 12 + classes)[12:]
    labels = [str(1 + i) for i in range(classes)]
    images = _paint(painter, "products10k", styles, labels, config.sop_images_per_class, "sop")
    for n, (label, data) in enumerate(images, 1):
        super_id = int(label) % len(SOP_SUPER)
        path = f"{SOP_SUPER[super_id]}_final/{111085122870 + n}_{n % 3}.JPG"
        split = "test" if int(label) == classes else "train"
        extras.inputs.append(ExtraImage("sop", path, label, data, (str(n), label, str(super_id + 1), path), split))
    extras.class_names["sop"] = {label: label for label in labels}
    extras.inputs += [
        ExtraImage("sop", "", None, None, (str(len(images) + 1), "1", "2"), expected="reject",
                   reject_reason="malformed_row"),
        ExtraImage("sop", "", None, None, (str(len(images) + 2), "1", "2", "../escape_final/1_0.JPG"),
                   expected="reject", reject_reason="unsafe_member_path"),
    ]


def _food(extras: Extras, config: ExtrasConfig, painter: Painter, original: tuple[str, bytes]) -> None:
    styles = object_styles(rng_for(config.seed, "imagenet", "styles"), 8 + config.food_classes)[8:]
    foods = FOODS[: config.food_classes]
    per_class = config.food_train_per_class + config.food_test_per_class + 1  # + 1 unlabelled
    images = _paint(painter, "imagenet", styles, [f for f, _ in foods], per_class, "food101")
    for n, (label, data) in enumerate(images):
        slot, listed = n % per_class, f"{label}/{1005649 + n}"
        split = "train" if slot < config.food_train_per_class else "test"
        image = ExtraImage("food101", f"images/{listed}.jpg", label, data, (listed,), split,
                           selected=split == "train")
        if slot == per_class - 1:  # a file no meta/*.txt names
            image.label, image.row, image.split, image.selected = None, None, "train", True
            image.expected, image.reject_reason = "reject", "unlabelled_image"
        extras.inputs.append(image)
    extras.class_names["food101"] = dict(foods)
    # a near copy (re-encoded at q60) of a Products-10K image among the first class's train images
    near = encode_jpeg(decode_rgb(original[1]), quality=60)
    if distance(hashes_of(near)[0], hashes_of(original[1])[0]) > NEAR_DUPLICATE_MAX_DISTANCE:
        raise RuntimeError("the re-encoded copy is not a near duplicate")
    copy = extras.of("food101")[0]
    copy.data = near
    _plant(extras, "near", original[0], copy, "near")


def _shopee(extras: Extras, config: ExtrasConfig, painter: Painter, products: tuple[str, bytes]) -> None:
    styles = package_styles(rng_for(config.seed, "products10k", "styles"), 24 + config.shopee_groups)[24:]
    groups = [str(249114794 + 7919 * i) for i in range(config.shopee_groups)]
    images = _paint(painter, "products10k", styles, groups, config.shopee_images_per_group, "shopee")
    rng = rng_for(config.seed, "shopee", "ids")
    for n, (group, data) in enumerate(images):
        name = f"{rng.bytes(16).hex()}.jpg"
        row = (f"train_{rng.integers(10**9, 10**10)}", name, f"{hashes_of(data)[0]:016x}",
               TITLES[groups.index(group) % len(TITLES)] + f" #{n}", group)
        extras.inputs.append(ExtraImage("shopee", f"train_images/{name}", group, data, row))
    extras.class_names["shopee"] = {g: TITLES[i % len(TITLES)] + f" #{i * config.shopee_images_per_group}"
                                    for i, g in enumerate(groups)}
    _plant(extras, "exact", products[0], _replace_data(extras.of("shopee")[0], products[1]), "exact")
    shared = extras.of("shopee")[1]  # a second posting of the same file (Kaggle has thousands)
    extras.inputs.append(ExtraImage("shopee", shared.image_id, None, None,
                                    (f"train_{rng.integers(10**9, 10**10)}", *shared.row[1:4], groups[-1]),
                                    expected="reject", reject_reason="duplicate_id"))
    missing = f"{rng.bytes(16).hex()}.jpg"
    extras.inputs.append(ExtraImage("shopee", f"train_images/{missing}", groups[0], None,
                                    (f"train_{rng.integers(10**9, 10**10)}", missing, "0" * 16, TITLES[0], groups[0]),
                                    expected="reject", reject_reason="missing_image"))


def _replace_data(image: ExtraImage, data: bytes) -> ExtraImage:
    image.data = data
    image.row = (image.row[0], image.row[1], f"{hashes_of(data)[0]:016x}", *image.row[3:])
    return image


def populate_extras(config: ExtrasConfig, base: dict, base_root: str) -> Extras:
    extras, painter = Extras(), Painter(config.seed, PerceptualSpacing())
    near_original, exact_original = _base_originals(base, base_root, 2)
    _sop(extras, config, painter)
    _food(extras, config, painter, near_original)
    _shopee(extras, config, painter, exact_original)
    # an SOP image that a Shopee seller uploaded again: new source against new source
    original = next(im for im in extras.of("sop") if im.split == "train" and im.data)
    copy = next(im for im in extras.of("shopee") if im.expected == "ok" and im.data and im.row and
                im is not extras.of("shopee")[1])
    _plant(extras, "exact", f"sop/{original.image_id}", _replace_data(copy, original.data), "exact")
    return extras
