"""Where a small build's CPU goes outside the images: the fixed cost of
`unibed build` on the generated sample, phase by phase, and the whole command
run directly (the default without a Prefect API) and as the Prefect flow on
Prefect's temporary server (`--prefect`).

    .venv/bin/python -m benchmarks.bench_fixed_cost [--sample out/bench-sample] [--no-prefect]   (about 2 minutes)

CPU is user+sys of the process and its waited-for children (getrusage); the
phases run in a fresh process, as a user's command does:
- interpreter + imports: Python start-up, then the CLI's and the build's imports;
- plan / lock / prepare-output / beam-build / assemble / validate / publish:
  the build sequence's stages (unibed/dataplane/build/launcher.py);
- within beam-build, the Beam fixed part is measured on its own, before the
  build: the FnApiRunner running a one-element pipeline (start-up and
  teardown, cold) and the pipeline's construction (graph + staged read
  context, not run); the rest of beam-build is the images' share;
- Prefect: its import and one temporary server start + stop (what a flow run
  without PREFECT_API_URL pays first);
- the plain per-image loop: the plainest Python doing the work no build can
  avoid (read, Pillow draft decode, pHash with imagehash, JPEG encode;
  bench_build_scale.plain_code) on the images the sample build preprocesses.
  The whole command minus that loop is the honest fixed cost: "images" above
  (beam-build minus its measured fixed part) also holds Beam's cost of running
  the graph's stages.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

SOURCES = ("imagenet", "products10k", "gldv2")


def cpu_seconds() -> float:
    """User+sys CPU of this process and its waited-for children."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


class Phases:
    def __init__(self):
        self.rows: list[tuple[str, float, float]] = []

    def measure(self, name: str, call, *args):
        cpu, wall = cpu_seconds(), time.perf_counter()
        done = call(*args)
        self.rows.append((name, cpu_seconds() - cpu, time.perf_counter() - wall))
        return done


def probe_build(sample: str, output: str) -> None:
    """In a fresh process: the direct build, phase by phase; prints JSON rows."""
    started = cpu_seconds()
    phases = Phases()
    phases.rows.append(("interpreter start-up", started, float("nan")))
    phases.measure("import unibed.cli.main (Beam via storage)", __import__, "unibed.cli.main")
    phases.measure("import the build (launcher, pipeline)", __import__, "unibed.flows.build_direct")
    from unibed.dataplane.build.launcher import BuildHooks, build_dataset
    from unibed.flows.build_parameters import check_parameters

    recipe, config = phases.measure("check parameters", check_parameters, "recipes/sample.yaml", output,
                                    {s: f"{sample}/{s}" for s in SOURCES}, "local", None)

    def run_stage(name, step, *args):
        return phases.measure(name, step, *args)

    fixed = beam_fixed(recipe)  # first: a cold runner start-up is what a build pays
    result = build_dataset(recipe, config, None, BuildHooks(run_stage=run_stage))
    assert result.status == "built", result.status
    assert "tensorflow" not in sys.modules and "prefect" not in sys.modules  # a direct build needs neither
    print(json.dumps(phases.rows + fixed.rows))


def beam_fixed(recipe) -> Phases:
    """The Beam stage's fixed part, measured on its own before the build."""
    import apache_beam as beam

    from unibed.dataplane import storage
    from unibed.dataplane.build.launcher import plan_build
    from unibed.dataplane.build.pipeline import build_pipeline
    from unibed.dataplane.build.runner_options import RunnerConfig, pipeline_options

    plan = plan_build(recipe, lambda message: None)
    work = tempfile.mkdtemp(prefix="unibed-bench-construct-")

    def construct():
        pipeline = beam.Pipeline(options=pipeline_options(RunnerConfig()))
        build_pipeline(pipeline, recipe, plan.indexes, plan.selections, plan.label_map, work,
                       storage.join(work, "_work"))

    def tiny_run():
        with beam.Pipeline(options=pipeline_options(RunnerConfig())) as pipeline:
            _ = pipeline | beam.Create([1]) | beam.Map(lambda x: x)

    phases = Phases()
    phases.measure("  of which: FnApiRunner start-up + teardown (1-element job)", tiny_run)
    phases.measure("  of which: pipeline construction (not run)", construct)
    return phases


def probe_prefect() -> None:
    """In a fresh process: Prefect's import and one temporary server start + stop."""
    phases = Phases()
    phases.measure("import prefect (flow, task)", __import__, "prefect")
    from prefect.server.api.server import SubprocessASGIServer

    def server():
        s = SubprocessASGIServer()
        s.start(timeout=300)
        s.stop()

    phases.measure("Prefect temporary server start + stop", server)
    print(json.dumps(phases.rows))


def run_probe(*args: str) -> list[tuple[str, float, float]]:
    done = subprocess.run([sys.executable, "-m", "benchmarks.bench_fixed_cost", *args], capture_output=True,
                          text=True, check=True, env=_env())
    return json.loads(done.stdout.strip().splitlines()[-1])


def _env() -> dict[str, str]:
    env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "300"}
    env.pop("PREFECT_API_URL", None)
    env.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="unibed-bench-prefect-"))
    return env


def whole_command(sample: str, *extra: str) -> tuple[float, float]:
    """CPU and wall of one `unibed build` process (and its children) on the sample."""
    output = tempfile.mkdtemp(prefix="unibed-bench-fixed-")
    sources = [arg for s in SOURCES for arg in ("--source", f"{s}={sample}/{s}")]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "unibed.cli", "build", "--output", output, *sources, *extra],
                   capture_output=True, text=True, check=True, env=_env())
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime), wall


def plain_loop(sample: str) -> float:
    """CPU of the plain per-image loop over the images the sample build
    preprocesses: those its recipe selects that decode (the rejected few
    never reach the image work). In a fresh process, as the build's probe."""
    done = subprocess.run([sys.executable, "-m", "benchmarks.bench_fixed_cost", "--probe", "plain",
                           "--sample", sample], capture_output=True, text=True, check=True, env=_env())
    return json.loads(done.stdout.strip().splitlines()[-1])


def probe_plain(sample: str) -> None:
    from benchmarks.bench_build_scale import plain_code

    folder = tempfile.mkdtemp(prefix="unibed-bench-plain-")
    paths = []
    for n, data in enumerate(selected_images(sample)):
        paths.append(os.path.join(folder, f"{n:05d}"))
        with open(paths[-1], "wb") as f:
            f.write(data)
    print(json.dumps(plain_code(paths)))


def selected_images(sample: str) -> list[bytes]:
    """The bytes of every image the sample build reads and keeps, that decodes,
    chosen by the build's own read step (ReadSelected) from the build's plan."""
    from unibed.dataplane.build.graph.read import ReadContext, ReadSelected
    from unibed.dataplane.build.launcher import plan_build
    from unibed.dataplane.images.preprocess import Rejected, preprocess
    from unibed.flows.build_parameters import check_parameters
    from unibed.schemas.source_record import SourceImage

    recipe, _ = check_parameters("recipes/sample.yaml", tempfile.mkdtemp(prefix="unibed-bench-plain-"),
                                 {s: f"{sample}/{s}" for s in SOURCES}, "local", None)
    plan = plan_build(recipe, lambda message: None)
    context = ReadContext(plan.indexes, {s.source: s for s in plan.selections})
    read = ReadSelected(recipe.split.salt, recipe.image.max_input_bytes)
    units = [u for s in recipe.sources for u in plan.indexes[s.name].units]
    items = [item for unit in units for item in read.process(unit, context) if isinstance(item, SourceImage)]
    return [item.data for item in items if not isinstance(preprocess(item.data, recipe.image), Rejected)]


def bytecode_state() -> str:
    """Whether imports read cached bytecode: without it (a venv installed without
    bytecode and PYTHONDONTWRITEBYTECODE set) every process compiles Beam afresh."""
    import importlib.util

    spec = importlib.util.find_spec("apache_beam.pipeline")
    cached = spec is not None and spec.cached is not None and os.path.exists(spec.cached)
    return ("imports read cached bytecode" if cached else
            "no cached bytecode: every process compiles its imports (PYTHONDONTWRITEBYTECODE="
            f"{os.environ.get('PYTHONDONTWRITEBYTECODE', '')!r}; `make setup` compiles the venv)")


def report(build_rows, prefect_rows, direct, flow, plain: float) -> None:
    print(bytecode_state())
    print(f"{'phase':64} {'CPU s':>7} {'wall s':>7}")
    for name, cpu, wall in [*build_rows, *prefect_rows]:
        print(f"{name:64} {cpu:7.2f} {wall:7.2f}")
    by_name = {name: cpu for name, cpu, _ in build_rows}
    fixed_beam = sum(cpu for name, cpu, _ in build_rows if name.startswith("  of which"))
    images = by_name["beam-build"] - fixed_beam
    print(f"\nimages (beam-build minus its fixed part): {images:.2f} s CPU")
    for label, (cpu, wall) in (("unibed build (direct, the default)", direct), ("unibed build --prefect", flow)):
        print(f"{label:40} {cpu:6.2f} s CPU ({cpu - images:6.2f} s outside the images), {wall:6.1f} s wall")
    print(f"\nplain per-image loop on the build's images (read, draft decode, imagehash pHash, JPEG encode): "
          f"{plain:.2f} s CPU")
    print(f"{'outside the images (total minus the plain per-image loop)':64} {direct[0] - plain:7.2f} s CPU "
          f"(direct; --prefect: {flow[0] - plain:.2f})")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sample", default="out/bench-sample")
    parser.add_argument("--probe", choices=("build", "prefect", "plain"))
    parser.add_argument("--no-prefect", action="store_true", help="skip the Prefect rows (about 40 s CPU)")
    parser.add_argument("--output")
    args = parser.parse_args()
    if args.probe == "build":
        return probe_build(args.sample, args.output)
    if args.probe == "prefect":
        return probe_prefect()
    if args.probe == "plain":
        return probe_plain(args.sample)
    if not os.path.exists(os.path.join(args.sample, "ground_truth.json")):
        from unibed.sample import generate_sample

        generate_sample(args.sample)
    build_rows = run_probe("--probe", "build", "--sample", args.sample,
                           "--output", tempfile.mkdtemp(prefix="unibed-bench-fixed-"))
    prefect_rows = [] if args.no_prefect else run_probe("--probe", "prefect")
    flow = (float("nan"), float("nan")) if args.no_prefect else whole_command(args.sample, "--prefect")
    report(build_rows, prefect_rows, whole_command(args.sample), flow, plain_loop(args.sample))


if __name__ == "__main__":
    main()
