"""What a build pays whatever its size (DESIGN.md "Fixed cost"): the shape of
its Beam graph and the options Beam reads while building it. The figures are
benchmarks/bench_fixed_cost.py's; these guard the structure behind them."""

from __future__ import annotations

import copy
import pickle

import apache_beam as beam
from apache_beam.options.pipeline_options import StandardOptions, TypeOptions

from unibed.dataplane import storage
from unibed.dataplane.build.launcher import plan_build
from unibed.dataplane.build.pipeline import build_pipeline
from unibed.dataplane.build.runner_options import pipeline_options, runner_config
from unibed.flows.build_parameters import check_parameters

SOURCES = ("imagenet", "products10k", "gldv2")


def test_local_options_make_each_view_once_and_views_share_the_values():
    """Beam asks for a view ~1,200 times while it builds the graph; each used to
    build and run an argparse parser (0.4 s of the sample build)."""
    options = pipeline_options(runner_config())
    assert options.view_as(TypeOptions) is options.view_as(TypeOptions)
    options.view_as(StandardOptions).streaming = True
    assert options.get_all_options()["streaming"] is True
    for other in (copy.deepcopy(options), pickle.loads(pickle.dumps(options))):  # Beam copies its options
        assert "_views" not in vars(other)
        assert other.view_as(StandardOptions).streaming is True
        other.view_as(StandardOptions).streaming = False
        assert other.view_as(StandardOptions) is other.view_as(StandardOptions)
    assert options.view_as(StandardOptions).streaming is True  # the copies' views are their own


def test_the_sample_builds_graph_stays_small(sample_root, tmp_path):
    """Beam spends ~5 ms per transform to build, translate and set it up, whatever
    the data: the side products share one writer and the joins tag in their own
    steps (183 transforms before, 121 after)."""
    recipe, _ = check_parameters("recipes/sample.yaml", str(tmp_path / "out"),
                                 {s: f"{sample_root}/{s}" for s in SOURCES}, "local", None)
    plan = plan_build(recipe, lambda message: None)
    pipeline = beam.Pipeline(options=pipeline_options(runner_config()))
    work = storage.join(recipe.output, "_work")
    build_pipeline(pipeline, recipe, plan.indexes, plan.selections, plan.label_map, recipe.output, work)
    leaves = []

    class Leaves(beam.pipeline.PipelineVisitor):
        def visit_transform(self, node):
            leaves.append(node.full_label)

    pipeline.visit(Leaves())
    assert len(leaves) <= 130, len(leaves)
    assert sum(label.startswith("WriteSideProducts/") for label in leaves) <= 12
    assert not [label for label in leaves if "CoGroupByKey" in label and not label.startswith(
        "Deduplicate/NearDuplicates/NearPairs/")]  # the search's joins are dedup/near_duplicates.py's
