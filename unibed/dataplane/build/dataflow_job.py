"""The Dataflow job a build would submit, built offline and never submitted.

Beam's DataflowRunner with `dry_run` (TestOptions) translates the pipeline
into the job, then stops before its API client; `job_request` finishes what
the client does before its one CreateJob call - stage the worker packages and
the pipeline proto to the staging location, attach the environment - and
returns the request body. What a submission would hit can then be checked
without Google Cloud: the request's size against Dataflow's limit
(tensorflow/datasets#2711: "job file 38 MB vs a 10 MB limit"), paths of the
launcher's disk, the worker packaging, side inputs staged rather than embedded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from unibed.dataplane import storage
from unibed.dataplane.build import output
from unibed.dataplane.build.pipeline import build_pipeline

if TYPE_CHECKING:
    from unibed.dataplane.build.launcher import BuildPlan

# Dataflow refuses a CreateJob request over 10 MB ("the size of the serialized
# JSON representation of the pipeline exceeds the allowable limit").
REQUEST_LIMIT_BYTES = 10 * 1024 * 1024


@dataclass
class DataflowJob:
    request: str  # the CreateJob request body (JSON), as the client sends it
    pipeline_proto: bytes  # the portable pipeline, staged next to the packages

    @property
    def request_bytes(self) -> int:
        return len(self.request.encode())

    @property
    def environment(self) -> dict:
        return json.loads(self.request)["environment"]

    @property
    def options(self) -> dict:
        """The pipeline options as the workers receive them."""
        return self.environment["sdkPipelineOptions"]["options"]

    @property
    def worker_packages(self) -> list[dict]:
        """What the workers install: {name, location} of each staged file."""
        return [p for pool in self.environment["workerPools"] for p in pool.get("packages", [])]


def job_request(plan: BuildPlan, options: PipelineOptions) -> DataflowJob:
    """Build `plan`'s Dataflow job with `options` (runner dataflow) and stage
    what the request refers to, without submitting it. Staging writes to the
    options' gs:// staging location, as a submission does."""
    from apache_beam.runners.dataflow.internal import apiclient

    dry = PipelineOptions(flags=[], **{**options.get_all_options(drop_default=True), "dry_run": True})
    pipeline = beam.Pipeline(options=dry)
    where = plan.recipe.output
    build_pipeline(pipeline, plan.recipe, plan.indexes, plan.selections, plan.label_map, where,
                   storage.join(where, output.WORK))
    job = pipeline.run().job  # translated, not submitted
    client = apiclient.DataflowApplicationClient(dry, job.root_staging_location)
    client.create_job_description(job)  # stages packages + pipeline proto, attaches the environment
    return DataflowJob(job.json(), job.proto_pipeline.SerializeToString())
