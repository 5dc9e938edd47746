"""`unibed sample` (write the generated sample) and `unibed inspect` (read
sources through the readers and summarise them)."""

from __future__ import annotations

import json
import time

DEFAULT_SAMPLE = "out/sample"


def add_sample_parsers(sub) -> None:
    p = sub.add_parser("sample", help="write a generated sample of the three datasets in their published layouts")
    p.add_argument("--out", default=DEFAULT_SAMPLE, help="folder or gs:// URL (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--extended", action="store_true",
                   help="also write Stanford Online Products, Food-101 and Shopee (sop/, food101/, shopee/; "
                        "recipes/sample-extended.yaml builds them)")
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("inspect", help="read sources through the readers and summarise them")
    p.add_argument("--recipe", default="recipes/sample.yaml", help="read the sources this recipe names")
    p.add_argument("--source", action="append", metavar="NAME=ROOT[@LAYOUT]",
                   help="read this source instead of the recipe's (repeatable)")
    p.add_argument("--all-layouts", action="store_true", help="read every layout present, not just the detected one")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_inspect)


def cmd_sample(args) -> int:
    from unibed.sample import SampleConfig, generate_sample

    start = time.perf_counter()
    truth = generate_sample(args.out, SampleConfig(seed=args.seed))
    print(f"sample written to {args.out} in {time.perf_counter() - start:.1f}s (seed {args.seed})")
    for source, counts in sorted(truth["counts"].items()):
        print(f"  {source:12s} " + "  ".join(f"{k}={v}" for k, v in sorted(counts.items())))
    print(f"  ground truth: {args.out}/ground_truth.json")
    if getattr(args, "extended", False):  # `unibed demo` passes a Namespace of its own
        from unibed.sample.extras import TRUTH_FILE, ExtrasConfig, generate_extras

        extras = generate_extras(args.out, config=ExtrasConfig(seed=args.seed))
        for source, counts in extras["counts"].items():
            print(f"  {source:12s} " + "  ".join(f"{k}={v}" for k, v in sorted(counts.items())))
        print(f"  ground truth of the extras: {args.out}/{TRUTH_FILE}")
    return 0


def _sources_to_read(args) -> list:
    """The recipe's sources (SourceSpec), or --source NAME=ROOT[@LAYOUT] ones
    (NAME a reader's name: imagenet, products10k, gldv2, sop, food101, shopee, ...)."""
    from unibed.schemas.recipe import SourceSpec

    if args.source:
        out = []
        for spec in args.source:
            name, _, rest = spec.partition("=")
            root, _, layout = rest.partition("@")
            out.append(SourceSpec(name=name, location=root, layout=layout or None))
        return out
    from unibed.dataplane.recipes import load_recipe

    return list(load_recipe(args.recipe).sources)


def cmd_inspect(args) -> int:
    from unibed.dataplane import sources
    from unibed.dataplane.sources.summary import format_table, summarise
    from unibed.schemas.reader_specs import SEED_READERS

    summaries = []
    for spec in _sources_to_read(args):
        # a generic reader's layout follows its recipe block: only the seeds have several to try
        every = args.all_layouts and spec.layout is None and spec.reader_name in SEED_READERS
        layouts = sources.READERS[spec.reader_name].LAYOUTS if every else (spec.layout,)
        summaries += [summarise(spec.name, spec.location, lay, spec.reader_name, spec.reader_options())
                      for lay in layouts]
    if args.json:
        print(json.dumps([s.to_dict() for s in summaries], indent=2))
    else:
        print(format_table(summaries))
    return 0
