"""Runner choice: validated configs -> PipelineOptions. A Dataflow job cannot be
submitted offline, so its options are checked as built: the values Beam will
read, and the wheel and requirements it would stage, really built."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from apache_beam.options.pipeline_options import (
    DirectOptions,
    GoogleCloudOptions,
    SetupOptions,
    StandardOptions,
    WorkerOptions,
)

from unibed.cli.main import main
from unibed.dataplane.build.runner_options import (
    WORKER_PRUNED,
    check_locations,
    pipeline_options,
    runner_config,
)
from unibed.schemas.errors import SchemaError

DATAFLOW = {
    "runner": "dataflow", "project": "my-project", "region": "europe-west4",
    "temp_location": "gs://my-bucket/tmp", "service_account_email": "builder@my-project.iam.gserviceaccount.com",
    "machine_type": "n2-standard-8", "num_workers": 4, "max_num_workers": 64, "network": "data",
    "subnetwork": "regions/europe-west4/subnetworks/data", "use_public_ips": False,
    "job_name": "unibed-build-v1", "labels": {"team": "ml", "dataset": "v1"},
}


def test_local_runners():
    local = pipeline_options(runner_config())
    assert local.view_as(StandardOptions).runner == "FnApiRunner"
    multi = pipeline_options(runner_config(runner="local-multiprocess", num_workers=3))
    assert multi.view_as(DirectOptions).direct_num_workers == 3
    assert multi.view_as(DirectOptions).direct_running_mode == "multi_processing"


def test_dataflow_options_ship_the_built_wheel_and_pinned_requirements(tmp_path):
    options = pipeline_options(runner_config(**DATAFLOW), package_dir=str(tmp_path))
    assert options.view_as(StandardOptions).runner == "DataflowRunner"
    cloud = options.view_as(GoogleCloudOptions)
    assert (cloud.project, cloud.region, cloud.temp_location, cloud.staging_location) == (
        "my-project", "europe-west4", "gs://my-bucket/tmp", "gs://my-bucket/tmp/staging")
    assert cloud.service_account_email == DATAFLOW["service_account_email"]
    assert cloud.job_name == "unibed-build-v1" and sorted(cloud.labels) == ["dataset=v1", "team=ml"]
    worker = options.view_as(WorkerOptions)
    assert (worker.num_workers, worker.max_num_workers, worker.machine_type) == (4, 64, "n2-standard-8")
    assert (worker.network, worker.subnetwork, worker.use_public_ips) == (
        "data", "regions/europe-west4/subnetworks/data", False)
    setup = options.view_as(SetupOptions)
    assert setup.save_main_session is False
    (wheel,) = setup.extra_packages
    with zipfile.ZipFile(wheel) as z:  # the code the workers import
        names = set(z.namelist())
    assert {"unibed/dataplane/build/pipeline.py", "unibed/schemas/recipe.py", "unibed/dataplane/storage.py"} <= names
    pins = Path(setup.requirements_file).read_text().splitlines()
    assert any(p.startswith("apache-beam==2.77.0") for p in pins)
    assert all("==" in p for p in pins if p.strip())  # every worker dependency pinned
    names = {p.split("==")[0] for p in pins}
    assert not names & set(WORKER_PRUNED) and "unibed" not in names
    assert not names & {"tensorflow", "tensorboard", "keras", "keras-hub", "fastapi"}  # no extras


def test_a_worker_image_replaces_the_requirements_file(tmp_path):
    options = pipeline_options(runner_config(**DATAFLOW, sdk_container_image="europe-docker.pkg.dev/p/r/worker:1"),
                               package_dir=str(tmp_path))
    assert options.view_as(WorkerOptions).sdk_container_image == "europe-docker.pkg.dev/p/r/worker:1"
    assert options.view_as(SetupOptions).requirements_file is None
    assert len(options.view_as(SetupOptions).extra_packages) == 1


@pytest.mark.parametrize(("changes", "message"), [
    ({"project": None}, "dataflow needs project"),
    ({"region": None, "temp_location": None}, "dataflow needs region; dataflow needs temp_location"),
    ({"temp_location": "/tmp/beam"}, "temp_location must be a gs:// URL"),
    ({"staging_location": "out/staging"}, "staging_location must be a gs:// URL"),
    ({"job_name": "Unibed_Build"}, "job_name 'Unibed_Build'"),
    ({"labels": {"Team": "ml"}}, "label Team=ml"),
    ({"num_workers": 10, "max_num_workers": 5}, "num_workers 10 > max_num_workers 5"),
    ({"runner": "local"}, "only for runner 'dataflow'"),
    ({"runner": "spark"}, "runner: Input should be"),
    ({"num_workers": 0}, "num_workers: Input should be greater than or equal to 1"),
])
def test_bad_configs_fail_up_front_naming_the_problem(changes, message, tmp_path):
    with pytest.raises(SchemaError, match=message.replace("(", r"\(")):
        pipeline_options(runner_config(**{**DATAFLOW, **changes}), package_dir=str(tmp_path))
    assert not list(tmp_path.iterdir())  # nothing was built


def test_dataflow_refuses_launcher_local_locations():
    config = runner_config(**DATAFLOW)
    check_locations(config, {"source gldv2": "gs://b/gldv2", "output": "gs://b/out"})
    with pytest.raises(SchemaError, match="launcher-local paths: output=out/v1, source gldv2=/data/gldv2"):
        check_locations(config, {"source gldv2": "/data/gldv2", "output": "out/v1"})
    check_locations(runner_config(), {"output": "out/v1"})  # local runners read local paths


def test_cli_build_rejects_bad_runner_flags_before_starting_anything(capsys, tmp_path):
    assert main(["build", "--runner", "dataflow", "--project", "p", "--temp-location", "/tmp/x"]) == 2
    assert "dataflow needs region" in capsys.readouterr().err
    assert main(["build", "--runner", "dataflow", "--project", "p", "--region", "r",
                 "--temp-location", "gs://b/tmp", "--output", str(tmp_path / "out")]) == 2
    assert "workers cannot read launcher-local paths" in capsys.readouterr().err
    assert main(["build", "--no-public-ips"]) == 2
    assert "use_public_ips: only for runner 'dataflow'" in capsys.readouterr().err


def test_every_runner_setting_is_a_build_flag_and_round_trips():
    from unibed.cli.build import runner_options
    from unibed.cli.main import build_parser
    from unibed.dataplane.build.runner_options import RunnerConfig

    argv = ["build", "--runner", "dataflow"]
    for name, value in DATAFLOW.items():
        if name == "use_public_ips":
            argv.append("--no-public-ips")
        elif name == "labels":
            argv += [x for k, v in value.items() for x in ("--label", f"{k}={v}")]
        else:
            argv += ["--" + name.replace("_", "-"), str(value)]
    args = build_parser().parse_args(argv)
    assert runner_config(runner=args.runner, **runner_options(args)) == runner_config(**DATAFLOW)
    # one list: a setting added to RunnerConfig gets its flag without touching the CLI
    assert set(RunnerConfig.model_fields) - {"runner"} <= set(vars(args))
