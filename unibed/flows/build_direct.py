"""The build sequence without Prefect: what `unibed build` runs when no
Prefect API is configured (`--prefect` runs the flow build-dataset anyway).

Without an API, a Prefect flow run first starts Prefect's temporary server
(a uvicorn subprocess migrating a SQLite database): 25-50 s on 2 cores, more
than a whole sample build, and the run is recorded only in that local
database. Run directly, the sequence is the same (unibed/dataplane/build/
launcher.py): the same stages, the same stage-named failures
("build-dataset: stage S failed for output O (recipe R): cause"), the same
transient-only retries with the flow's backoff; only the Prefect record
(task states, artifacts) is missing. Prefect is never imported here.
"""

from __future__ import annotations

import logging
import os
import random
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from unibed.dataplane.build.launcher import BuildHooks, build_dataset
from unibed.dataplane.build.runner_options import RunnerConfig
from unibed.flows.build_parameters import FLOW, build_summary, finished_flow_run
from unibed.flows.retries import backoff_delays, is_transient
from unibed.flows.stages import stage
from unibed.schemas.recipe import Recipe

LOG = logging.getLogger("unibed.build")
_JITTER = 0.2  # as the flow's tasks: retry_jitter_factor


def prefect_api_configured(environ: dict[str, str] | None = None) -> str | None:
    """The Prefect API a flow run would report to: PREFECT_API_URL from the
    environment or the active profile (read as Prefect does, without
    importing it: that alone costs seconds of CPU). None: no server to record in."""
    env = os.environ if environ is None else environ
    if env.get("PREFECT_API_URL"):
        return env["PREFECT_API_URL"]
    home = Path(env.get("PREFECT_HOME") or Path.home() / ".prefect").expanduser()
    try:
        profiles = tomllib.loads((home / "profiles.toml").read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return None
    active = env.get("PREFECT_PROFILE") or profiles.get("active", "ephemeral")
    return profiles.get("profiles", {}).get(active, {}).get("PREFECT_API_URL") or None


def build_directly(recipe: Recipe, config: RunnerConfig, force_unlock: bool = False,
                   recipe_name: str = "<checked>") -> dict:
    """The flow build-dataset's sequence and result, without Prefect."""
    where = {"output": recipe.output, "recipe": f"{recipe_name} ({recipe.name})"}
    hooks = BuildHooks(run_stage=stage_directly(where), holder_gone=finished_flow_run,
                       force_unlock=force_unlock, log=LOG.info, warn=LOG.warning)
    result = build_dataset(recipe, config, None, hooks)
    return build_summary(result.status, recipe.output, result.manifest)


def stage_directly(where: dict[str, str], sleep: Callable[[float], None] = time.sleep):
    """The sequence's stage wrapper: transient failures retried as the flow's
    tasks retry them, any failure named by flow, stage and inputs."""
    def run_stage(name: str, step: Callable[..., Any], *args: Any) -> Any:
        with stage(FLOW, name, **where):
            return _with_retries(name, step, args, sleep)
    return run_stage


def _with_retries(name: str, step: Callable[..., Any], args: tuple, sleep: Callable[[float], None]) -> Any:
    delays = backoff_delays()
    for attempt in range(len(delays) + 1):
        start = time.perf_counter()
        try:
            done = step(*args)
        except Exception as e:
            if attempt == len(delays) or not is_transient(e):
                raise
            delay = delays[attempt] * (1 + random.uniform(-_JITTER, _JITTER))
            LOG.warning(f"{name}: attempt {attempt + 1} failed ({type(e).__name__}: {e}); retrying in {delay:.0f} s")
            sleep(delay)
            continue
        LOG.info(f"{name}: done in {time.perf_counter() - start:.1f} s")
        return done
    raise AssertionError("unreachable")
