"""`unibed build` (the build sequence: as the Prefect flow build-dataset when a
Prefect API is configured or --prefect is given, else directly) and `unibed plan`
(metadata only).

The Beam runner's flags are made from the fields of RunnerConfig
(unibed/dataplane/build/runner_options.py): one list of settings."""

from __future__ import annotations

import logging
import sys
import time

from unibed.flows.stages import StageFailed
from unibed.schemas.errors import SchemaError

CLI_FORCE_OPTION = "--force-unlock"


def add_build_parsers(sub) -> None:
    p = sub.add_parser("build", help="build a dataset (the Prefect flow build-dataset when a Prefect API is set)")
    p.add_argument("--recipe", default="recipes/sample.yaml")
    p.add_argument("--output", help="override the recipe's output (folder or gs:// URL)")
    _add_source_flag(p)
    p.add_argument("--force-unlock", action="store_true",
                   help="break the output's build lock even when this host cannot tell its run is over "
                        "(a run on another host): only when you know no build is writing the output")
    p.add_argument("--prefect", action="store_true",
                   help="run the Prefect flow build-dataset even with no PREFECT_API_URL (then on Prefect's "
                        "temporary server, 25-50 s more); by default such a build runs directly, unrecorded")
    add_runner_flags(p.add_argument_group("Beam runner (see unibed/dataplane/build/runner_options.py)"))
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("plan", help="metadata only: label space, image counts, bytes, shards, cost")
    p.add_argument("--recipe", default="recipes/reference.yaml")
    _add_source_flag(p)
    p.set_defaults(func=cmd_plan)


def _add_source_flag(p) -> None:
    p.add_argument("--source", action="append", metavar="NAME=LOCATION",
                   help="read this source from LOCATION instead of the recipe's (repeatable)")


def add_runner_flags(group) -> None:
    from unibed.dataplane.build.runner_options import RUNNERS, RunnerConfig

    group.add_argument("--runner", choices=RUNNERS, default="local")
    for name, field in RunnerConfig.model_fields.items():
        if name == "use_public_ips":
            group.add_argument("--no-public-ips", dest=name, action="store_false", default=None,
                               help="dataflow: workers get private IPs only")
        elif name == "labels":
            group.add_argument("--label", dest=name, action="append", metavar="KEY=VALUE",
                               help="dataflow: job label (repeatable)")
        elif name != "runner":
            group.add_argument("--" + name.replace("_", "-"), dest=name, help=field.description,
                               type=int if int in getattr(field.annotation, "__args__", ()) else str)


def runner_options(args) -> dict:
    """The build's runner settings from its flags (only those given)."""
    from unibed.dataplane.build.runner_options import RunnerConfig

    options = {name: getattr(args, name) for name in RunnerConfig.model_fields
               if name not in ("runner", "labels") and getattr(args, name, None) is not None}
    labels = {}
    for spec in getattr(args, "labels", None) or []:
        key, sep, value = spec.partition("=")
        if not sep:
            raise SchemaError(f"--label takes KEY=VALUE, got {spec!r}")
        labels[key] = value
    return {**options, "labels": labels} if labels else options


def parse_sources(specs: list[str] | None) -> dict[str, str]:
    out = {}
    for spec in specs or []:
        name, sep, location = spec.partition("=")
        if not sep or not location:
            raise SchemaError(f"--source takes NAME=LOCATION, got {spec!r}")
        out[name] = location
    return out


def cmd_build(args) -> int:
    from unibed.dataplane.build.accounting import accounting_rows, accounting_text
    from unibed.dataplane.build.output import read_manifest
    from unibed.flows.build_parameters import check_parameters

    runner, options = getattr(args, "runner", "local"), runner_options(args)
    # the flow's own parameter check, before Prefect starts; the checked recipe is passed on
    recipe, config = check_parameters(args.recipe, args.output, parse_sources(args.source), runner, options)
    start = time.perf_counter()
    try:
        result = _run_build(args, recipe, config, options)
    except StageFailed as e:
        raise for_cli(e) from e
    print(f"\ndataset {result['status']} at {result['output']} ({time.perf_counter() - start:.0f}s): "
          f"{result['num_classes']} classes, records " + ", ".join(f"{k}={v}" for k, v in result["records"].items()))
    manifest = read_manifest(result["output"])
    print(accounting_text(accounting_rows(manifest)))
    if manifest.evaluation is not None:
        print(describe_evaluation(manifest))
    print(f"manifest: {result['output']}/manifest.json; reports: " + ", ".join(
        ["label_map.csv", *result["reports"].values()]))
    return 0


def describe_evaluation(manifest) -> str:
    """One line on the evaluation split: held-out classes, queries, index, the leak guard's drops."""
    info, splits = manifest.evaluation, manifest.splits
    ranges = ", ".join(f"{s} {a}-{b}" for s, (a, b) in sorted(info.label_ranges.items(), key=lambda r: r[1]))
    count = (lambda split: splits[split].num_records if split in splits else 0)
    return (f"evaluation split (classes never trained on): {info.num_classes} held-out classes ({ranges}), "
            f"{count('retrieval-query')} queries against {count('retrieval-index')} index images; "
            f"leak guard dropped {sum(info.leak_guard_drops.values())} training candidates")


def _run_build(args, recipe, config, options: dict) -> dict:
    """The flow when a Prefect API records it (or --prefect), else the same
    sequence directly: a temporary Prefect server would cost more than a small build."""
    from unibed.flows.build_direct import build_directly, prefect_api_configured

    force_unlock = getattr(args, "force_unlock", False)
    if getattr(args, "prefect", False) or prefect_api_configured():
        from unibed.flows.build_dataset import build_dataset_flow

        return build_dataset_flow(recipe=recipe, runner=config.runner, runner_options=options,
                                  force_unlock=force_unlock)
    _log_to_stderr(logging.getLogger("unibed.build"))
    print("unibed: no Prefect API configured (PREFECT_API_URL): building directly, not recorded in Prefect "
          "(--prefect runs the flow build-dataset on a temporary server)", file=sys.stderr)
    return build_directly(recipe, config, force_unlock, recipe_name=args.recipe)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is when a message comes (a redirect, a test's capture)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def _log_to_stderr(logger: logging.Logger) -> None:
    """The build's progress on stderr, as a flow run's log would show it."""
    if not logger.handlers:
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s.%(msecs)03d | %(levelname)-7s | %(message)s",
                                               datefmt="%H:%M:%S"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def for_cli(failure: StageFailed) -> StageFailed:
    """The failure as a CLI user reads it: a lock refusal names --force-unlock,
    not the flow's parameter."""
    from unibed.dataplane.build.lock import OutputLockedError, locked_error

    cause = failure.cause
    if not isinstance(cause, OutputLockedError) or not hasattr(cause, "holder"):
        return failure
    cli_cause = locked_error(cause.output_dir, cause.holder, force_option=CLI_FORCE_OPTION)
    return StageFailed(failure.flow, failure.stage, failure.inputs, cli_cause)


def cmd_plan(args) -> int:
    from unibed.dataplane.build.launcher import plan_build
    from unibed.dataplane.build.plan_report import describe_plan, format_plan
    from unibed.dataplane.recipes import load_recipe

    recipe = load_recipe(args.recipe).with_source_locations(parse_sources(args.source))
    plan = plan_build(recipe)
    print(format_plan(describe_plan(plan)))
    if plan.heldout is not None:  # its images are counted among each source's above
        held = sum(len(s.heldout.images) for s in plan.selections)
        ranges = ", ".join(f"{s} {a}-{b}" for s, (a, b) in plan.heldout.ranges().items())
        print(f"evaluation split: {plan.heldout.num_classes} held-out classes ({ranges}), {held} images "
              "before dedup, never trained on")
    return 0
