"""`unibed` command line: plain argparse over plain functions."""

from __future__ import annotations

import argparse
import json
import sys
import time

from schemas.errors import SchemaError, SourceLayoutError

DEFAULT_SAMPLE = "out/sample"


def _cmd_sample(args) -> int:
    from unibed.sample import SampleConfig, generate_sample

    config = SampleConfig(seed=args.seed)
    start = time.perf_counter()
    truth = generate_sample(args.out, config)
    seconds = time.perf_counter() - start
    print(f"sample written to {args.out} in {seconds:.1f}s (seed {args.seed})")
    for source, counts in sorted(truth["counts"].items()):
        print(f"  {source:12s} " + "  ".join(f"{k}={v}" for k, v in sorted(counts.items())))
    print(f"  ground truth: {args.out}/ground_truth.json")
    return 0


def _sources_to_read(args) -> list[tuple[str, str, str | None]]:
    """(source, root, layout) triples from --recipe or --source NAME=ROOT[:LAYOUT]."""
    if args.source:
        out = []
        for spec in args.source:
            name, _, rest = spec.partition("=")
            root, _, layout = rest.partition("@")
            out.append((name, root, layout or None))
        return out
    from schemas.recipe import load_recipe

    recipe = load_recipe(args.recipe)
    return [(s.name, s.location, s.layout) for s in recipe.sources]


def _cmd_inspect(args) -> int:
    from beam_jobs import sources
    from unibed.source_summary import format_table, summarise

    summaries = []
    for name, root, layout in _sources_to_read(args):
        layouts = sources.READERS[name].LAYOUTS if args.all_layouts and layout is None else (layout,)
        summaries += [summarise(name, root, lay) for lay in layouts]
    if args.json:
        print(json.dumps([s.to_dict() for s in summaries], indent=2))
    else:
        print(format_table(summaries))
    return 0


def _cmd_demo(args) -> int:
    """The main job on the embedded default: generate the sample, read every layout."""
    args.out = f"{args.workdir}/sample"
    _cmd_sample(args)
    print()
    print("reading every published layout of the sample through the readers:")
    args.source = [f"{s}={args.out}/{s}" for s in ("imagenet", "products10k", "gldv2")]
    args.all_layouts, args.json = True, False
    return _cmd_inspect(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="unibed", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("sample", help="write a generated sample of the three datasets in their published layouts")
    p.add_argument("--out", default=DEFAULT_SAMPLE, help="folder or gs:// URL (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_sample)

    p = sub.add_parser("inspect", help="read sources through the readers and summarise them")
    p.add_argument("--recipe", default="recipes/sample.yaml", help="read the sources this recipe names")
    p.add_argument("--source", action="append", metavar="NAME=ROOT[@LAYOUT]",
                   help="read this source instead of the recipe's (repeatable)")
    p.add_argument("--all-layouts", action="store_true", help="read every layout present, not just the detected one")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_inspect)

    p = sub.add_parser("demo", help="the main job on the embedded default")
    p.add_argument("--workdir", default="out", help="where the sample and outputs go (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (SchemaError, SourceLayoutError) as e:
        print(f"unibed: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
