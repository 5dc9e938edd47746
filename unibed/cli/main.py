"""`unibed` command line: plain argparse over plain functions, one module per
command group (sample.py, build.py, fetch.py, train.py, search.py, demo.py)."""

from __future__ import annotations

import argparse
import os
import sys

from unibed.dataplane.build.lock import OutputLockedError
from unibed.dataplane.build.output import OutputExistsError
from unibed.flows.stages import StageFailed
from unibed.schemas.errors import SchemaError, SourceLayoutError

# Prefect's temporary server (the embedded default) needs longer than its
# 20 s default to start on a loaded 2-core machine; analytics stay off.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


def build_parser() -> argparse.ArgumentParser:
    from unibed.cli.build import add_build_parsers
    from unibed.cli.demo import add_demo_parser
    from unibed.cli.fetch import add_fetch_parser
    from unibed.cli.sample import add_sample_parsers
    from unibed.cli.search import add_search_parser, add_serve_parser
    from unibed.cli.train import add_train_parser

    parser = argparse.ArgumentParser(prog="unibed", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (add_sample_parsers, add_build_parsers, add_fetch_parser, add_train_parser, add_search_parser,
                add_serve_parser, add_demo_parser):
        add(sub)
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
