"""`unibed train`: train, export and score with the flow `train`.

The flow runs the trainer (`python -m unibed.trainer run`) as its own process; this
module only parses flags and prints the scores.
"""

from __future__ import annotations

import time


def add_train_parser(sub) -> None:
    p = sub.add_parser("train", help="train the embedding model on a build, export it, score mP@5 (flow train)")
    p.add_argument("--dataset", default="out/build-sample", help="a build: folder or gs:// URL with manifest.json")
    p.add_argument("--workdir", default="out/train-sample",
                   help="checkpoints, TensorBoard logs, export/, metrics.json (folder or gs://)")
    p.add_argument("--config", default="tiny", help="tiny, vit_h14, vit_l14, vit_l14_336, vit_g14, guie_1st, guie_2nd, "
                   "guie_4th, unibed_best or a config JSON file")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field, e.g. global_batch_size=256 (repeatable)")
    p.add_argument("--steps", type=int, help="total training steps over both stages (default: the config's)")
    p.set_defaults(func=cmd_train)


def print_scores(metrics: dict) -> None:
    """Closed-set mP@5 (classes trained on) and, when scored, open-set (classes never trained on)."""
    trained, k = metrics["trained"], metrics["trained"].get("k", 5)
    print(f"mP@{k} closed set (classes trained on): {trained['num_queries']} validation queries "
          f"against {trained['num_index']} train images:")
    _print_table({"trained": trained, "untrained": metrics["untrained"]})
    opened = metrics.get("open_set")
    if opened:
        first = opened["trained"]
        print(f"mP@{k} open set (held-out classes, never trained on): {first['num_queries']} queries "
              f"against {first['num_index']} index images:")
        _print_table(opened)


def _print_table(results: dict) -> None:
    domains = sorted(results["trained"]["per_source"])
    print(f"  {'':10s} {'all':>6s} " + " ".join(f"{s:>11s}" for s in domains))
    for name, result in results.items():
        per = " ".join(f"{result['per_source'].get(s, float('nan')):11.3f}" for s in domains)
        print(f"  {name:10s} {result['mp_at_k']:6.3f} {per}")


def cmd_train(args) -> int:
    from unibed.flows.train import train_flow

    start = time.perf_counter()
    metrics = train_flow(dataset=args.dataset, workdir=args.workdir, config=args.config,
                         overrides=args.set, steps=args.steps)
    print(f"\ntrained, exported and scored in {time.perf_counter() - start:.0f}s")
    print_scores(metrics)
    print(f"model: {args.workdir.rstrip('/')}/export (SavedModel: uint8 [B,H,W,3] -> 64-d L2-normalised)")
    return 0
