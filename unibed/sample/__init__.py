"""A deterministic generated sample of ImageNet, Products-10K and GLDv2 in their published layouts.

`generate_sample(out_root, SampleConfig(...))` writes `imagenet/`, `products10k/`
and `gldv2/` under `out_root` exactly as docs/layouts.md describes, with
procedurally drawn class images (a model can learn them; unrelated images are
more than 10 pHash bits apart, and no probe hash of one near another) and planted
problems: exact and near duplicates within and across sources (among them one copy per
edit of unibed.sample.edits: mirrored, cropped 4/8/12%, letterboxed, pillarboxed,
captioned, greyscale, turned 3 degrees, downscaled to JPEG q30), odd but valid files (CMYK, grayscale, PNG named
.JPEG, EXIF-rotated, very large) and broken ones (truncated, empty, not an
image, pixel bomb, missing, unlabelled). Same seed and config: byte-identical files.

Ground truth (returned, and written to `out_root/ground_truth.json`):

- `schema_version` (1), `seed`, `config` (the SampleConfig as a dict).
- `sources`: {source: {"root": dir under out_root, "classes": {label: {"name",
  "images": train-split images listed with that label, planted ones included}}}};
  `sources.gldv2.not_in_clean` lists ids that are in train.csv and the tars but
  not in train_clean.csv. Everything else describes a build that reads
  GLDv2-clean (the target's subset), so those ids appear nowhere else.
- `images`: one entry per input, sorted by (source, image_id): `source`,
  `image_id`, `label` (null when no metadata names it), `split` ("train"/"val"),
  `expected` ("ok" | "duplicate" | "reject"), `reject_reason` (a RejectReason
  value or null), `quirk` (null or cmyk, grayscale, png_named_jpeg, exif_rotated,
  very_large, pixel_bomb, truncated, empty, not_an_image, missing, unlabelled),
  `duplicate_group` (id or null), `in_layouts` (imagenet: official_tar (train
  only) / kaggle_folder; products10k: folder, zip; gldv2: tars; [] when missing).
- `duplicate_groups`: {"id", "kind" ("exact" | "near"), "transform" ("identical",
  "reencode_q60", "resize_0.6", "mirror", "crop_8pct", ...), "members"
  (["source/image_id", ...], original first), "conflicting_labels" (members do not
  all share one (source, label); so always true across sources), "cross_source",
  "phash_distance" (max over members vs the original), "match" (the kind
  duplicates.csv should give: "exact", "near", or "near:<probe kind>", e.g.
  "near:mirror", for an edit the pHash alone misses)}. A sample too small to carry
  every edit plants those it can, borrowing originals from another source. The original is
  expected "ok", the others "duplicate"; which one a build keeps is its own
  rule, so compare groups as sets.
- `counts`: {source: {"listed", "ok", "duplicate", "reject"}}, where listed is
  the number of the source's `images` entries and the sum of the other three.
"""

from unibed.sample.config import SampleConfig
from unibed.sample.generate import generate_sample

__all__ = ["SampleConfig", "generate_sample"]
