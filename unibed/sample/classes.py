"""The sample's classes per source: realistic labels and names, each with its own distinct look."""

from __future__ import annotations

from unibed.sample.catalog import SampleClass
from unibed.sample.config import SampleConfig
from unibed.sample.identifiers import Identifiers, category_name
from unibed.sample.scene_landmarks import building_styles
from unibed.sample.scene_objects import object_styles
from unibed.sample.scene_products import package_styles
from unibed.sample.seeding import rng_for


def make_classes(config: SampleConfig, ids: Identifiers) -> dict[str, list[SampleClass]]:
    seed = config.seed
    wnids = sorted(ids.wnid() for _ in range(config.imagenet_classes))
    imagenet = [SampleClass("imagenet", wnid, style.description, style)
                for wnid, style in zip(wnids, object_styles(rng_for(seed, "imagenet", "styles"),
                                                            len(wnids)))]

    skus = sorted(ids.products_class() for _ in range(config.products_classes))
    products = []
    for sku, style in zip(skus, package_styles(rng_for(seed, "products10k", "styles"), len(skus))):
        group = ids.products_group()
        products.append(SampleClass("products10k", str(sku), f"sku {sku} (group {group})", style,
                                    group=group))

    landmarks = sorted(ids.landmark_id() for _ in range(config.gldv2_landmarks))
    gldv2 = []
    for landmark, style in zip(landmarks, building_styles(rng_for(seed, "gldv2", "styles"),
                                                          len(landmarks))):
        url = ids.category_url(style.kinds)
        gldv2.append(SampleClass("gldv2", str(landmark), category_name(url), style,
                                 category_url=url))
    return {"imagenet": imagenet, "products10k": products, "gldv2": gldv2}
