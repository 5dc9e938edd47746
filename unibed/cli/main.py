"""`unibed` command line: plain argparse over plain functions."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from unibed.dataplane.build.publish import OutputExistsError, OutputLockedError
from unibed.flows.stages import StageFailed
from unibed.schemas.errors import SchemaError, SourceLayoutError

DEFAULT_SAMPLE = "out/sample"

# Prefect's temporary server (the embedded default) needs longer than its
# 20 s default to start on a loaded 2-core machine; analytics stay off.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


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
    from unibed.dataplane.recipes import load_recipe

    recipe = load_recipe(args.recipe)
    return [(s.name, s.location, s.layout) for s in recipe.sources]


def _cmd_inspect(args) -> int:
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


def _parse_sources(specs: list[str] | None) -> dict[str, str]:
    out = {}
    for spec in specs or []:
        name, sep, location = spec.partition("=")
        if not sep or not location:
            raise SchemaError(f"--source takes NAME=LOCATION, got {spec!r}")
        out[name] = location
    return out


_RUNNER_FLAGS = ("num_workers", "project", "region", "temp_location", "staging_location",
                 "service_account_email", "machine_type", "max_num_workers", "network", "subnetwork",
                 "sdk_container_image", "job_name")


def _runner_options(args) -> dict:
    """The build's runner settings from its flags (only those given)."""
    options = {name: getattr(args, name) for name in _RUNNER_FLAGS if getattr(args, name, None) is not None}
    if getattr(args, "no_public_ips", False):
        options["use_public_ips"] = False
    for spec in getattr(args, "label", None) or []:
        key, sep, value = spec.partition("=")
        if not sep:
            raise SchemaError(f"--label takes KEY=VALUE, got {spec!r}")
        options.setdefault("labels", {})[key] = value
    return options


def _cmd_build(args) -> int:
    from unibed.dataplane.build.launcher import recipe_locations
    from unibed.dataplane.build.runner_options import check_locations, runner_config
    from unibed.dataplane.recipes import load_recipe
    from unibed.flows.build_dataset import build_dataset_flow

    runner, options, sources = getattr(args, "runner", "local"), _runner_options(args), _parse_sources(args.source)
    # bad runner settings or launcher-local paths for Dataflow fail here, before Prefect starts
    recipe = load_recipe(args.recipe, output=args.output).with_source_locations(sources)
    check_locations(runner_config(runner=runner, **options), recipe_locations(recipe))
    start = time.perf_counter()
    result = build_dataset_flow(recipe=args.recipe, output=args.output, sources=sources,
                                runner=runner, runner_options=options)
    seconds = time.perf_counter() - start
    print(f"\ndataset {result['status']} at {result['output']} ({seconds:.0f}s): "
          f"{result['num_classes']} classes, records " + ", ".join(f"{k}={v}" for k, v in result["records"].items()))
    print(f"{'source':12s} {'inputs':>7s} {'written':>8s} {'dups':>5s} {'rejected':>9s} {'not sel.':>9s}")
    for source, acc in result["accounting"].items():
        print(f"{source:12s} {acc['inputs']:7d} {acc['written']:8d} {acc['duplicates']:5d} "
              f"{acc['rejected']:9d} {acc['not_selected']:9d}")
    print(f"manifest: {result['output']}/manifest.json; reports: duplicates.csv, rejects.csv, label_map.csv, "
          "duplicate_groups.png")
    return 0


def _cmd_plan(args) -> int:
    from unibed.dataplane.build.launcher import plan_build
    from unibed.dataplane.build.plan_report import describe_plan, format_plan
    from unibed.dataplane.recipes import load_recipe

    recipe = load_recipe(args.recipe).with_source_locations(_parse_sources(args.source))
    print(format_plan(describe_plan(plan_build(recipe))))
    return 0


def _cmd_demo(args) -> int:
    """The main job on the embedded default: generate the sample, read every
    layout, build the sample dataset (flow build-dataset), then train, export
    and score a tiny CLIP on it (flow train) and search with the model."""
    args.out = f"{args.workdir}/sample"
    _cmd_sample(args)
    print()
    print("reading every published layout of the sample through the readers:")
    args.source = [f"{s}={args.out}/{s}" for s in ("imagenet", "products10k", "gldv2")]
    args.all_layouts, args.json = True, False
    _cmd_inspect(args)
    print()
    print("building the sample dataset (Prefect flow build-dataset, Beam's local runner):")
    args.recipe, args.output = "recipes/sample.yaml", f"{args.workdir}/build-sample"
    _cmd_build(args)
    print()
    print("training a tiny CLIP + ArcFace on it, exporting, scoring mP@5 (Prefect flow train):")
    from unibed.cli.train import cmd_train

    train_workdir = f"{args.workdir}/train-sample"
    code = cmd_train(argparse.Namespace(dataset=args.output, workdir=train_workdir, config="tiny", set=[],
                                        steps=args.train_steps))
    model, gallery = f"{train_workdir}/export", args.output
    print(f"\nsee it retrieve: unibed search --model {model} --gallery {gallery} --gallery-split train "
          f"--query-split validation\n                 unibed serve --model {model} --gallery {gallery}")
    return code


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

    p = sub.add_parser("build", help="build a dataset with the Prefect flow build-dataset")
    p.add_argument("--recipe", default="recipes/sample.yaml")
    p.add_argument("--output", help="override the recipe's output (folder or gs:// URL)")
    p.add_argument("--source", action="append", metavar="NAME=LOCATION",
                   help="read this source from LOCATION instead of the recipe's (repeatable)")
    beam = p.add_argument_group("Beam runner (see unibed/dataplane/build/runner_options.py)")
    beam.add_argument("--runner", choices=("local", "local-multiprocess", "dataflow"), default="local")
    beam.add_argument("--num-workers", type=int,
                      help="local-multiprocess: worker processes (default 2); dataflow: initial workers")
    beam.add_argument("--project", help="dataflow: GCP project")
    beam.add_argument("--region", help="dataflow: region, e.g. europe-west4")
    beam.add_argument("--temp-location", help="dataflow: gs:// folder for temporary files")
    beam.add_argument("--staging-location", help="dataflow: gs:// folder for staged code (default: TEMP/staging)")
    beam.add_argument("--service-account-email", help="dataflow: the workers' service account")
    beam.add_argument("--machine-type", help="dataflow: worker machine type, e.g. n2-standard-4")
    beam.add_argument("--max-num-workers", type=int, help="dataflow: autoscaling ceiling")
    beam.add_argument("--network", help="dataflow: VPC network")
    beam.add_argument("--subnetwork", help="dataflow: subnetwork, e.g. regions/REGION/subnetworks/NAME")
    beam.add_argument("--no-public-ips", action="store_true", help="dataflow: workers get private IPs only")
    beam.add_argument("--sdk-container-image", help="dataflow: worker image with the pinned dependencies")
    beam.add_argument("--job-name", help="dataflow: job name (lowercase letters, digits, '-')")
    beam.add_argument("--label", action="append", metavar="KEY=VALUE", help="dataflow: job label (repeatable)")
    p.set_defaults(func=_cmd_build)

    p = sub.add_parser("plan", help="metadata only: label space, image counts, bytes, shards, cost")
    p.add_argument("--recipe", default="recipes/reference.yaml")
    p.add_argument("--source", action="append", metavar="NAME=LOCATION",
                   help="read this source from LOCATION instead of the recipe's (repeatable)")
    p.set_defaults(func=_cmd_plan)

    from unibed.cli.fetch import add_fetch_parser
    from unibed.cli.search import add_search_parser, add_serve_parser
    from unibed.cli.train import add_train_parser

    add_fetch_parser(sub)
    add_train_parser(sub)
    add_search_parser(sub)
    add_serve_parser(sub)

    p = sub.add_parser("demo", help="the main job on the embedded default: sample -> build -> train -> score")
    p.add_argument("--workdir", default="out", help="where the sample and outputs go (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-steps", type=int, help="total training steps (default: the tiny config's)")
    p.set_defaults(func=_cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (SchemaError, SourceLayoutError, OutputExistsError, OutputLockedError, StageFailed) as e:
        print(f"unibed: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
