"""Named sources: published datasets read by the generic listing reader with
their own file names (docs/layouts.md). Each is a ListingSpec and nothing
else; a recipe uses one with `reader: sop` (or food101, shopee), or by naming
the source so.

- `sop`: Stanford Online Products. `Ebay_train.txt` / `Ebay_test.txt`:
  header `image_id class_id super_class_id path`, space-separated; images at
  `<super class>_final/<image>.JPG` under the root. Label = class_id (train and
  test classes are disjoint: 11,318 + 11,316 = 22,634).
- `food101`: Food-101. `meta/train.txt` / `meta/test.txt`: one `class/id` per
  line (no header, no extension); images at `images/class/id.jpg`; label = the
  class folder; names from `meta/classes.txt` + `meta/labels.txt` (`Apple pie`).
- `shopee`: Kaggle "shopee-product-matching". `train.csv`: header
  `posting_id,image,image_phash,title,label_group`; images in `train_images/`;
  label = label_group; a group's name = the title of its first posting (groups
  have no names of their own). A file that several postings share is listed
  once: its first row wins, the others are DUPLICATE_ID.
"""

from __future__ import annotations

from unibed.schemas.reader_specs import ListingSpec

PRESETS = {
    "sop": ListingSpec(
        files={"train": "Ebay_train.txt", "test": "Ebay_test.txt"},
        separator="whitespace",
        path_column="path",
        label_column="class_id",
    ),
    "food101": ListingSpec(
        files={"train": "meta/train.txt", "test": "meta/test.txt"},
        separator="whitespace",
        header=False,
        path_column=0,
        path_prefix="images/",
        path_suffix=".jpg",
        class_list="meta/classes.txt",
        class_names="meta/labels.txt",
    ),
    "shopee": ListingSpec(
        files={"train": "train.csv"},
        path_column="image",
        label_column="label_group",
        name_column="title",
        path_prefix="train_images/",
    ),
}
