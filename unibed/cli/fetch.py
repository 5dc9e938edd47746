"""`unibed fetch`: stage the published archives with the flow `fetch-sources`."""

from __future__ import annotations

import sys
import time

from unibed.schemas.errors import SchemaError


def _md5_specs(specs: list[str] | None) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for spec in specs or []:
        source, sep1, rest = spec.partition(":")
        name, sep2, digest = rest.partition("=")
        if not (sep1 and sep2 and source and name and digest):
            raise SchemaError(f"--md5 takes SOURCE:NAME=HEX, got {spec!r}")
        out.setdefault(source, {})[name] = digest.lower()
    return out


def add_fetch_parser(sub) -> None:
    p = sub.add_parser("fetch", help="fetch the published archives into a staging folder or bucket "
                                     "(resumable, md5-verified; flow fetch-sources)")
    p.add_argument("staging", help="folder or gs:// URL; each source goes to STAGING/<source>")
    p.add_argument("--no-gldv2", action="store_true", help="do not fetch GLDv2")
    p.add_argument("--gldv2-url", default=None, help="GLDv2 base URL (default: the public S3 bucket)")
    p.add_argument("--gldv2-tars", type=int, default=500, help="fetch images_000..N-1 (default: %(default)s)")
    p.add_argument("--gldv2-attribution", action="store_true", help="also fetch train_attribution.csv")
    p.add_argument("--products10k", metavar="URL", help="Products-10K base: http(s)://, gs:// or a folder")
    p.add_argument("--products10k-files", nargs="+", metavar="NAME", help="default: train.csv train.zip")
    p.add_argument("--imagenet", metavar="URL", help="ImageNet base: http(s)://, gs:// or a folder")
    p.add_argument("--imagenet-files", nargs="+", metavar="NAME", help="default: ILSVRC2012_img_train.tar")
    p.add_argument("--md5", action="append", metavar="SOURCE:NAME=HEX", help="a checksum you know (repeatable)")
    p.add_argument("--workers", type=int, default=8, help="parallel downloads (default: %(default)s)")
    p.add_argument("--part-size-mb", type=float, default=64, help="resume granularity (default: %(default)s)")
    p.add_argument("--retries", type=int, default=5)
    p.set_defaults(func=cmd_fetch)


def cmd_fetch(args) -> int:
    from unibed.dataplane.fetch import FetchError, FetchFailed
    from unibed.flows.fetch_sources import GLDV2_URL, fetch_sources_flow

    md5 = _md5_specs(args.md5)
    start = time.perf_counter()
    try:
        results = fetch_sources_flow(
            staging=args.staging,
            gldv2_url=None if args.no_gldv2 else (args.gldv2_url or GLDV2_URL),
            gldv2_tars=args.gldv2_tars, gldv2_attribution=args.gldv2_attribution,
            products10k_url=args.products10k, products10k_files=args.products10k_files,
            imagenet_url=args.imagenet, imagenet_files=args.imagenet_files, md5=md5,
            workers=args.workers, part_size_mb=args.part_size_mb, retries=args.retries,
        )
    except FetchFailed as failed:  # one line per file not staged, and why; a rerun resumes
        for line in failed.lines():
            print(f"unibed: fetch failed: {line}", file=sys.stderr)
        return 2
    except (FetchError, ValueError) as err:  # a bad plan (unknown file, glob on http) or no room
        print(f"unibed: fetch failed: {err}", file=sys.stderr)
        return 2
    print(f"\nstaged under {args.staging} in {time.perf_counter() - start:.0f}s:")
    for source, r in sorted(results.items()):
        print(f"  {source:12s} files {r['files']} (fetched {r['fetched']}, already staged {r['already_staged']}), "
              f"{r['downloaded'] / 1e6:.1f} MB downloaded at {r['mb_per_s']:.1f} MB/s")
    print("build from it with: unibed build " + " ".join(
        f"--source {s}={args.staging.rstrip('/')}/{s}" for s in sorted(results)))
    return 0
