"""Which Beam runner a build uses, as one validated config -> PipelineOptions.

    local               FnApiRunner, one process (Beam's local portable runner,
                        without the DirectRunner's Prism download; REFERENCE 7)
    local-multiprocess  FnApiRunner with `num_workers` SDK worker subprocesses:
                        proves the pipeline needs no launcher memory or files
    dataflow            DataflowRunner; the project ships as a wheel built from
                        this checkout (`uv build`) plus pinned requirements
                        exported from uv.lock, or runs in `sdk_container_image`

A Dataflow config is checked up front (project, region, gs:// temp location,
job name and label syntax) so that a mistake fails before planning or reading
any image. Options are always built with flags=[]: the launching process's own
command line is never parsed.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Literal

from apache_beam.options.pipeline_options import PipelineOptions
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from unibed.schemas.errors import SchemaError

RUNNERS = ("local", "local-multiprocess", "dataflow")
# Workers run unibed.dataplane and unibed.schemas only: the base install (no
# trainer, no rig: DESIGN.md) without Prefect, pruned with everything only it
# needs; infra/export_requirements.py gives infra/worker/requirements.txt the same.
WORKER_PRUNED = ("prefect",)
PROJECT_ROOT = Path(__file__).resolve().parents[3]

_JOB_NAME = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")
_LABEL_KEY = re.compile(r"[a-z][-_a-z0-9]{0,62}")
_LABEL_VALUE = re.compile(r"[-_a-z0-9]{0,63}")


def _dataflow(description: str, **field_args):
    """A setting that only the Dataflow runner takes."""
    if "default_factory" not in field_args:
        field_args.setdefault("default", None)
    return Field(description=f"dataflow: {description}", json_schema_extra={"dataflow_only": True}, **field_args)


class RunnerConfig(BaseModel):
    """The runner settings: one list, from which the CLI's flags, the checks and
    the PipelineOptions are all derived."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    runner: Literal["local", "local-multiprocess", "dataflow"] = "local"
    num_workers: int | None = Field(default=None, ge=1, description=(
        "local-multiprocess: worker processes (default 2); dataflow: initial workers"))
    project: str | None = _dataflow("GCP project")
    region: str | None = _dataflow("region, e.g. europe-west4")
    temp_location: str | None = _dataflow("gs:// folder for temporary files")
    staging_location: str | None = _dataflow("gs:// folder for staged code (default: TEMP/staging)")
    service_account_email: str | None = _dataflow("the workers' service account")
    machine_type: str | None = _dataflow("worker machine type, e.g. n2-standard-4")
    max_num_workers: int | None = _dataflow("autoscaling ceiling", ge=1)
    network: str | None = _dataflow("VPC network")
    subnetwork: str | None = _dataflow("subnetwork, e.g. regions/REGION/subnetworks/NAME")
    use_public_ips: bool = _dataflow("workers get public IPs (false: private IPs only)", default=True)
    sdk_container_image: str | None = _dataflow("worker image with the pinned dependencies (then no "
                                                "requirements file is shipped)")
    job_name: str | None = _dataflow("job name (lowercase letters, digits, '-')")
    labels: dict[str, str] = _dataflow("job labels", default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> RunnerConfig:
        problems = self._dataflow_problems() if self.runner == "dataflow" else self._local_problems()
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _local_problems(self) -> list[str]:
        given = [f for f in dataflow_only_fields() if getattr(self, f) != RunnerConfig.model_fields[f].get_default(
            call_default_factory=True)]
        problems = [f"{', '.join(given)}: only for runner 'dataflow', not {self.runner!r}"] if given else []
        if self.runner == "local" and self.num_workers not in (None, 1):
            problems.append("runner 'local' is one process: use 'local-multiprocess' for num_workers > 1")
        return problems

    def _dataflow_problems(self) -> list[str]:
        problems = [f"dataflow needs {f}" for f in ("project", "region", "temp_location") if not getattr(self, f)]
        for name in ("temp_location", "staging_location"):
            value = getattr(self, name)
            if value and not value.startswith("gs://"):
                problems.append(f"{name} must be a gs:// URL that Dataflow workers can reach, got {value!r}")
        if self.job_name and not _JOB_NAME.fullmatch(self.job_name):
            problems.append(f"job_name {self.job_name!r}: lowercase letters, digits and '-', "
                            "starting with a letter, at most 63 characters")
        for key, value in self.labels.items():
            if not _LABEL_KEY.fullmatch(key) or not _LABEL_VALUE.fullmatch(value):
                problems.append(f"label {key}={value}: keys and values take lowercase letters, digits, "
                                "'_' and '-' (keys start with a letter), at most 63 characters")
        if self.num_workers and self.max_num_workers and self.num_workers > self.max_num_workers:
            problems.append(f"num_workers {self.num_workers} > max_num_workers {self.max_num_workers}")
        return problems

    @property
    def is_distributed(self) -> bool:
        """Workers are other machines: every location they touch must be remote."""
        return self.runner == "dataflow"


_COMPUTED = ("runner", "staging_location", "labels")  # PipelineOptions take these in another form


def dataflow_only_fields() -> tuple[str, ...]:
    return tuple(name for name, f in RunnerConfig.model_fields.items()
                 if (f.json_schema_extra or {}).get("dataflow_only"))


def runner_config(**values) -> RunnerConfig:
    """A RunnerConfig, or SchemaError naming every problem (what the CLI and flow show)."""
    try:
        return RunnerConfig(**values)
    except ValidationError as e:
        details = "; ".join(
            (".".join(map(str, err["loc"])) + ": " if err["loc"] else "") + err["msg"].removeprefix("Value error, ")
            for err in e.errors()
        )
        raise SchemaError(f"runner options: {details}") from None


def check_locations(config: RunnerConfig, locations: dict[str, str]) -> None:
    """Distributed workers cannot see the launcher's disk: every location must be gs://."""
    if not config.is_distributed:
        return
    local = {what: where for what, where in locations.items() if "://" not in where}
    if local:
        listed = ", ".join(f"{what}={where}" for what, where in sorted(local.items()))
        raise SchemaError(f"runner {config.runner!r}: workers cannot read launcher-local paths: {listed}; "
                          "use gs:// URLs")


def check_packaging(config: RunnerConfig) -> None:
    """A Dataflow job without a worker image ships the pinned requirements, and
    Beam's stager downloads them at submission with `pip download`: a launcher
    without pip (a uv-made virtualenv has none) would fail deep inside Beam
    ("No package metadata was found for pip") after planning, so say it first."""
    if config.is_distributed and not config.sdk_container_image and importlib.util.find_spec("pip") is None:
        raise SchemaError(f"runner 'dataflow' without sdk_container_image stages the pinned requirements with "
                          f"`pip download`, and {sys.executable} has no pip: install pip into it, or pass "
                          "sdk_container_image (the worker image, infra/worker)")


class LocalOptions(PipelineOptions):
    """PipelineOptions whose views are made once per options class.

    Beam asks the pipeline's options for a view (`view_as`) a few times per
    transform it applies (~1,200 times for the build's graph), and each view
    builds and runs an argparse parser: 0.6 s of the 1.1 s the graph's
    construction took. A view shares the options' values (`_all_options`) and
    depends otherwise only on the flags, which never change here, so the same
    view serves every call. The cache is not part of the options' state: a
    copy (Beam's Pipeline deep-copies its options) or a pickle starts without
    it. Local runners only: a Dataflow submission keeps Beam's own class."""

    def view_as(self, cls):
        views = self.__dict__.setdefault("_views", {})
        if cls not in views:
            views[cls] = super().view_as(cls)
        return views[cls]

    def __getstate__(self):
        state = dict(super().__getstate__())
        state.pop("_views", None)
        return state


def pipeline_options(config: RunnerConfig, package_dir: str | None = None) -> PipelineOptions:
    """PipelineOptions for `config`. Dataflow: builds the wheel (and the
    requirements file unless an SDK container image is given) into
    `package_dir` (a new temporary folder if None); they must outlive the submission."""
    if config.runner == "local":
        return LocalOptions(flags=[], runner="FnApiRunner")
    if config.runner == "local-multiprocess":
        return LocalOptions(flags=[], runner="FnApiRunner", direct_num_workers=config.num_workers or 2,
                            direct_running_mode="multi_processing")
    package_dir = package_dir or tempfile.mkdtemp(prefix="unibed-dataflow-")
    passed = {name: getattr(config, name) for name in RunnerConfig.model_fields if name not in _COMPUTED}
    options = PipelineOptions(
        flags=[],
        runner="DataflowRunner",
        **passed,
        staging_location=config.staging_location or config.temp_location.rstrip("/") + "/staging",
        labels=[f"{k}={v}" for k, v in sorted(config.labels.items())] or None,
        extra_packages=[build_wheel(package_dir)],
        requirements_file=None if config.sdk_container_image else write_worker_requirements(package_dir),
        # workers import the wheel's modules; nothing from the launcher's __main__
        save_main_session=False,
    )
    return options


def describe(options: PipelineOptions) -> dict:
    """The options a build runs with, for its log (only those set)."""
    return {k: v for k, v in options.get_all_options(drop_default=True).items() if v is not None}


def _uv() -> list[str]:
    # on PATH, next to this interpreter, or the module the Makefile installs
    for found in (shutil.which("uv"), str(Path(sys.executable).with_name("uv"))):
        if found and Path(found).exists():
            return [found]
    return ["python3", "-m", "uv"]


def _project_root() -> Path:
    if not (PROJECT_ROOT / "pyproject.toml").exists() or not (PROJECT_ROOT / "uv.lock").exists():
        raise SchemaError(f"{PROJECT_ROOT} is not a unibed checkout (no pyproject.toml/uv.lock): "
                          "cannot build the pipeline package; pass sdk_container_image with unibed installed")
    return PROJECT_ROOT


def build_wheel(out_dir: str) -> str:
    """Build this checkout's wheel (the code Dataflow workers import) into out_dir."""
    root = _project_root()
    done = _run([*_uv(), "build", "--wheel", "--out-dir", out_dir, str(root)], root)
    wheels = sorted(Path(out_dir).glob("unibed-*.whl"))
    if done.returncode != 0 or not wheels:
        raise SchemaError(f"uv build failed ({done.returncode}): {done.stderr[-2000:]}")
    return str(wheels[-1])


def worker_requirements() -> str:
    """Pinned worker dependencies: uv.lock's closure of the base install (no
    extras) without Prefect (WORKER_PRUNED) nor unibed itself (it ships as the wheel)."""
    command = [*_uv(), "export", "--frozen", "--no-dev", "--no-hashes", "--no-emit-project",
               "--no-annotate", "--no-header"]
    for name in WORKER_PRUNED:
        command += ["--prune", name]
    done = _run(command, _project_root())
    if done.returncode != 0:
        raise SchemaError(f"uv export failed ({done.returncode}): {done.stderr[-2000:]}")
    return done.stdout


def _run(command: list[str], cwd: Path) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise SchemaError("packaging the pipeline for Dataflow needs `uv` (make setup installs it)") from None


def write_worker_requirements(out_dir: str) -> str:
    path = Path(out_dir, "requirements.txt")
    path.write_text(worker_requirements())
    return str(path)
