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
    return 0


def _sources_to_read(args) -> list[tuple[str, str, str | None]]:
    """(source, root, layout) triples from --recipe or --source NAME=ROOT[@LAYOUT]."""
    if args.source:
        out = []
        for spec in args.source:
            name, _, rest = spec.partition("=")
            root, _, layout = rest.partition("@")
            out.append((name, root, layout or None))
        return out
    from unibed.dataplane.recipes import load_recipe

    recipe = load_recipe(args.recipe)
    return [(s.name, s.location, s.layout) for s in recipe.sources]


def cmd_inspect(args) -> int:
    from unibed.dataplane import sources
    from unibed.dataplane.sources.summary import format_table, summarise

    summaries = []
    for name, root, layout in _sources_to_read(args):
        layouts = sources.READERS[name].LAYOUTS if args.all_layouts and layout is None else (layout,)
        summaries += [summarise(name, root, lay) for lay in layouts]
    if args.json:
        print(json.dumps([s.to_dict() for s in summaries], indent=2))
    else:
        print(format_table(summaries))
    return 0
