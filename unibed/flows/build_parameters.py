"""The build's parameters, checked without reading data - and without Prefect.

`unibed build` checks them before it decides how to run (the flow
build-dataset or the same sequence directly, unibed/flows/build_direct.py):
importing Prefect costs seconds of CPU that a direct build never needs.
"""

from __future__ import annotations

import re
from typing import Any

from unibed.dataplane.build.launcher import recipe_inputs, recipe_locations
from unibed.dataplane.build.output import check_apart
from unibed.dataplane.build.runner_options import (
    RunnerConfig,
    check_locations,
    check_packaging,
    runner_config,
)
from unibed.dataplane.recipes import load_recipe
from unibed.flows.stages import ParameterError
from unibed.schemas.errors import SchemaError
from unibed.schemas.recipe import Recipe

FLOW = "build-dataset"


def check_parameters(recipe: str | Recipe, output: str | None, sources: dict[str, str] | None,
                     runner: str, runner_options: dict[str, Any] | None) -> tuple[Recipe, RunnerConfig]:
    """Everything about the parameters that can be checked without reading data
    (the CLI runs the same check and passes the checked recipe on)."""
    try:
        config = runner_config(runner=runner, **(runner_options or {}))
    except (SchemaError, ValueError, TypeError) as e:
        raise ParameterError(FLOW, "runner_options", str(e)) from None
    spec = _recipe(recipe, output, sources)
    try:
        check_locations(config, recipe_locations(spec))
        check_apart(spec.output, recipe_inputs(spec))
    except (SchemaError, ValueError) as e:
        raise ParameterError(FLOW, "sources/output", str(e)) from None
    try:
        check_packaging(config)
    except SchemaError as e:
        raise ParameterError(FLOW, "runner_options", str(e)) from None
    return spec, config


def _recipe(recipe: str | Recipe, output: str | None, sources: dict[str, str] | None) -> Recipe:
    try:
        if isinstance(recipe, str):
            spec = load_recipe(recipe, output=output)
        else:
            spec = recipe.with_overrides(output=output) if output else recipe
    except SchemaError as e:
        raise ParameterError(FLOW, "recipe" if output is None else "recipe/output", str(e)) from None
    try:
        return spec.with_source_locations(sources) if sources else spec
    except SchemaError as e:
        raise ParameterError(FLOW, "sources", str(e)) from None


_FLOW_RUN_LABEL = re.compile(r"^flow-run-(?P<id>[0-9a-f-]{36})@")


def finished_flow_run(holder: str) -> str | None:
    """If the lock's holder is a Prefect flow run that is over, say so
    (Prefect is imported only for such a holder)."""
    m = _FLOW_RUN_LABEL.match(holder)
    if not m:
        return None
    from prefect.client.orchestration import get_client

    try:
        with get_client(sync_client=True) as client:
            state = client.read_flow_run(m["id"]).state
    except Exception:  # noqa: BLE001 - unknown to this server: cannot judge
        return None
    if state is not None and state.is_final():
        return f"its flow run {m['id']} is {state.name}"
    return None


def build_summary(status: str, output: str, manifest) -> dict:
    """What a build returns (the flow's result, the CLI's summary)."""
    return {
        "status": status,
        "output": output,
        "num_classes": manifest.num_classes,
        "records": {split: info.num_records for split, info in manifest.splits.items()},
        "accounting": {s: a.model_dump() for s, a in manifest.accounting.items()},
        "reports": dict(manifest.reports),
    }
