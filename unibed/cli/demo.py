"""`unibed demo`: the main job on the embedded default."""

from __future__ import annotations

import argparse

SOURCES = ("imagenet", "products10k", "gldv2")


def add_demo_parser(sub) -> None:
    p = sub.add_parser("demo", help="the main job on the embedded default: sample -> build -> train -> score")
    p.add_argument("--workdir", default="out", help="where the sample and outputs go (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-steps", type=int, help="total training steps (default: the tiny config's)")
    p.set_defaults(func=cmd_demo)


def cmd_demo(args) -> int:
    """Generate the sample, read every layout, build the sample dataset (flow
    build-dataset), then train, export and score a tiny CLIP on it (flow train)."""
    from unibed.cli.build import cmd_build
    from unibed.cli.sample import cmd_inspect, cmd_sample
    from unibed.cli.train import cmd_train

    sample, build, train = (f"{args.workdir}/{name}" for name in ("sample", "build-sample", "train-sample"))
    # the sample recipe plus an evaluation split of held-out classes: closed- and open-set mP@5
    cmd_sample(argparse.Namespace(out=sample, seed=args.seed))
    print("\nreading every published layout of the sample through the readers:")
    cmd_inspect(argparse.Namespace(source=[f"{s}={sample}/{s}" for s in SOURCES], all_layouts=True, json=False))
    print("\nbuilding the sample dataset (Prefect flow build-dataset, Beam's local runner):")
    cmd_build(argparse.Namespace(recipe="recipes/sample-eval.yaml", output=build, source=[f"{s}={sample}/{s}" for s in SOURCES],
                                 prefect=True))  # the train flow starts the temporary server anyway
    print("\ntraining a tiny CLIP + ArcFace on it, exporting, scoring mP@5 (Prefect flow train):")
    code = cmd_train(argparse.Namespace(dataset=build, workdir=train, config="tiny", set=[], steps=args.train_steps))
    print(f"\nsee it retrieve: unibed search --model {train}/export --gallery {build} --gallery-split train "
          f"--query-split validation\n                 unibed search --model {train}/export --gallery {build} "
          f"--gallery-split retrieval-index --query-split retrieval-query   (classes never trained on)"
          f"\n                 unibed serve --model {train}/export --gallery {build}")
    return code
