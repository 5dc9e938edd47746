"""`python -m unibed.trainer run|export|evaluate|soup ...` (see unibed/trainer/run.py).

Exit status 0 on success; on failure a one-line `error: ...` on stderr and
status 1 (2 for bad arguments), with the traceback only when UNIBED_DEBUG=1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m unibed.trainer", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="train (or resume) in a work folder, export, score")
    r.add_argument("--dataset", required=True, help="folder or gs:// URL holding manifest.json")
    r.add_argument("--workdir", required=True, help="checkpoints, logs, export (local or gs://)")
    r.add_argument("--config", default="tiny",
                   help="a preset (tiny, vit_h14, vit_l14, vit_l14_336, vit_g14; the GUIE "
                        "solutions' guie_1st, guie_2nd, guie_4th; unibed_best) or a config JSON file")
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field (augment.<field> for augmentation); repeatable")
    r.add_argument("--steps", type=int, help="total training steps, split over the two stages "
                   "in the config's head:finetune proportion")
    r.add_argument("--stop-at-step", type=int,
                   help="stop (after a checkpoint) at this global step; a rerun resumes")
    r.add_argument("--cache-dir", help="where a GCS dataset is staged locally when needed")
    r.add_argument("--no-baseline", action="store_true", help="skip scoring the untrained model")

    e = sub.add_parser("export", help="export a work folder's latest checkpoint")
    e.add_argument("--workdir", required=True)
    e.add_argument("--export-dir", help="default: <workdir>/export")
    e.add_argument("--zip", help="also write a submission zip here")

    s = sub.add_parser("soup", help="average the weights of runs from one starting point, "
                       "export and score the average (unibed/trainer/soup.py)")
    s.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="the runs' work folders")
    s.add_argument("--out", required=True, help="where the soup's export and metrics go")
    s.add_argument("--dataset", help="score on this dataset (default: the first run's)")
    s.add_argument("--cache-dir")

    v = sub.add_parser("evaluate", help="mP@5 of an exported SavedModel on a dataset: closed-set "
                       "(validation vs train) and open-set (its evaluation split of held-out classes)")
    v.add_argument("--export-dir", required=True)
    v.add_argument("--dataset", help="a build (folder or gs:// URL holding manifest.json)")
    v.add_argument("--retrieval-set", help="an outside set: a CSV (role,label,path[,domain]) or a folder "
                   "of query/<label>/<image> and index/<label>/<image>")
    v.add_argument("--image-size", type=int, required=True,
                   help="the evaluation view's size (the model resizes again inside)")
    v.add_argument("--batch-size", type=int, default=64)
    v.add_argument("--cache-dir")
    return p


def _load_config(name: str):
    from unibed.trainer.config import PRESET_NAMES, TrainConfig, get_config

    if name in PRESET_NAMES or not name.endswith(".json"):
        return get_config(name)
    import tensorflow as tf

    with tf.io.gfile.GFile(name) as f:
        return TrainConfig.from_json(f.read())


def _evaluate(args, cache_dir: str) -> dict[str, dict]:
    """{"closed": ..., "open": ...} for a build (open only when it has an evaluation
    split), {"outside": ...} for an outside set; both when both are given."""
    from unibed.trainer.export import load_embed_fn

    if not args.dataset and not args.retrieval_set:
        raise ValueError("evaluate needs --dataset, --retrieval-set or both")
    embed_fn, sizes = load_embed_fn(args.export_dir), {"image_size": args.image_size, "batch_size": args.batch_size}
    results = {}
    if args.dataset:
        from unibed.trainer.data import load_manifest, resolve_dataset
        from unibed.trainer.evaluate import evaluate, evaluate_open_set

        dataset_dir = resolve_dataset(args.dataset, cache_dir)
        manifest = load_manifest(dataset_dir)
        results["closed"] = evaluate(embed_fn, dataset_dir, manifest, **sizes).to_dict()
        opened = evaluate_open_set(embed_fn, dataset_dir, manifest, **sizes)
        if opened is not None:
            results["open"] = opened.to_dict()
    if args.retrieval_set:
        from unibed.trainer.outside_set import evaluate_outside_set

        results["outside"] = evaluate_outside_set(embed_fn, args.retrieval_set, **sizes).to_dict()
    return results


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        from unibed.trainer.run import default_cache_dir, emit_metric, run, with_total_steps

        if args.command == "run":
            config = _load_config(args.config).with_settings(args.set)
            if args.steps is not None:
                config = with_total_steps(config, args.steps)
            run(args.dataset, args.workdir, config, cache_dir=args.cache_dir,
                stop_at_step=args.stop_at_step, baseline=not args.no_baseline)
        elif args.command == "export":
            from unibed.trainer.export import export_saved_model, write_submission_zip
            from unibed.trainer.run import load_trained_models

            config, models, checkpoint = load_trained_models(args.workdir)
            export_dir = args.export_dir or args.workdir.rstrip("/") + "/export"
            export_saved_model(models.embedding, config, export_dir)
            if args.zip:
                write_submission_zip(export_dir, args.zip)
            emit_metric({"event": "exported", "checkpoint": checkpoint, "export_dir": export_dir,
                         "zip": args.zip})
        elif args.command == "soup":
            from unibed.trainer.soup import soup

            soup(args.run_dirs, args.out, dataset=args.dataset, cache_dir=args.cache_dir)
        elif args.command == "evaluate":
            results = _evaluate(args, args.cache_dir or default_cache_dir())
            for which, result in results.items():
                emit_metric({"event": "eval", "model": args.export_dir, "set": which, **result})
            print(json.dumps(results, indent=2, sort_keys=True))
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # one clear line for the flow that runs us; traceback on demand
        if os.environ.get("UNIBED_DEBUG") == "1":
            raise
        message = " ".join(str(e).split()) or type(e).__name__
        print(f"error: {type(e).__name__}: {message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
