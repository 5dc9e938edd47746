"""`unibed search` and `unibed serve`; unibed/cli/main.py adds them with
add_search_parser(sub) and add_serve_parser(sub)."""

from __future__ import annotations

import os
import sys

from unibed.retrieval.cache import DEFAULT_CACHE_DIR
from unibed.retrieval.index import BACKENDS
from unibed.schemas.manifest import ALL_SPLITS

DEFAULT_UPLOAD_MB = 20
DEFAULT_MAX_PIXELS = 40_000_000  # a query needs far fewer; bounds the server's decode memory


def _common(p) -> None:
    p.add_argument("--model", required=True, help="exported SavedModel folder (serving_default -> embedding)")
    p.add_argument("--gallery",
                   help="a build (folder or gs:// URL holding manifest.json) or a local folder of images")
    p.add_argument("--retrieval-set",
                   help="instead of --gallery, an outside retrieval set: a CSV (role,label,path[,domain]) or a "
                        "folder of query/<label>/<image> and index/<label>/<image>; its index is the gallery, "
                        "and `search` queries with its queries")
    p.add_argument("--gallery-split", action="append", choices=ALL_SPLITS,
                   help="for a build: the split(s) to search (repeatable; default: train and validation); "
                        "retrieval-index (+ retrieval-query) is the evaluation split of classes never trained on")
    p.add_argument("--cache-dir", default=DEFAULT_CACHE_DIR, help="embedding cache (default: %(default)s)")
    p.add_argument("--backend", default="exact", choices=BACKENDS,
                   help="exact (numpy, to ~10^6 images) or faiss-hnsw (approximate; needs faiss-cpu)")
    p.add_argument("--image-size", type=int, default=None,
                   help="model input side (default: the model's declared size, else 224)")
    p.add_argument("--batch-size", type=int, default=32)


def add_search_parser(sub) -> None:
    p = sub.add_parser("search", help="search a gallery with query images using an exported model")
    _common(p)
    p.add_argument("queries", nargs="*", help="query image files or folders of images")
    p.add_argument("--query-split", choices=ALL_SPLITS,
                   help="also query with every image of this split of the --gallery build "
                        "(labelled: prints top-1 and P@5, marks each hit relevant or not)")
    p.add_argument("-k", "--top-k", type=int, default=5)
    p.add_argument("--out", default="out/search", help="folder for report.html and contact_sheet.png")
    p.set_defaults(func=cmd_search)


def add_serve_parser(sub) -> None:
    p = sub.add_parser("serve", help="a local web page: search by upload, duplicates, rejects, summary")
    _common(p)
    p.add_argument("--host", default="127.0.0.1", help="default: loopback only")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("-k", "--top-k", type=int, default=10)
    p.add_argument("--max-upload-mb", type=float, default=DEFAULT_UPLOAD_MB)
    p.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS)
    p.add_argument("--no-source-thumbnails", action="store_true",
                   help="do not read the build's sources for the duplicates page's dropped images")
    p.set_defaults(func=cmd_serve)


def _splits(args) -> tuple[str, ...] | None:
    return tuple(dict.fromkeys(args.gallery_split)) if args.gallery_split else None


def _searcher(args):
    from unibed.retrieval.gallery import GalleryError, RetrievalSetGallery
    from unibed.retrieval.search import Searcher

    if bool(args.gallery) == bool(args.retrieval_set):
        raise GalleryError("give --gallery or --retrieval-set (one of them)")
    gallery = RetrievalSetGallery(args.retrieval_set) if args.retrieval_set else args.gallery
    return Searcher(args.model, gallery, splits=_splits(args), cache_dir=args.cache_dir,
                    backend=args.backend, image_size=args.image_size, batch_size=args.batch_size,
                    max_pixels=getattr(args, "max_pixels", None))


def _query_files(paths: list[str]) -> list[str]:
    from unibed.retrieval.gallery import IMAGE_SUFFIXES

    out = []
    for path in paths:
        if os.path.isdir(path):
            for folder, dirs, files in os.walk(path):
                dirs.sort()
                out += [os.path.join(folder, f) for f in sorted(files) if f.lower().endswith(IMAGE_SUFFIXES)]
        else:
            out.append(path)
    return out


def cmd_search(args) -> int:
    from unibed.retrieval import report
    from unibed.retrieval.errors import RigError
    from unibed.retrieval.images import thumbnail_jpeg
    from unibed.retrieval.search import QueryResult, precision_at, split_queries, top1_rate

    if not args.queries and not args.query_split and not args.retrieval_set:
        print("unibed search: give query images (files or folders), --query-split or --retrieval-set",
              file=sys.stderr)
        return 2
    if args.top_k < 1:
        print("unibed search: --top-k must be at least 1", file=sys.stderr)
        return 2
    try:
        searcher = _searcher(args)
        results: list[QueryResult] = []
        for path in _query_files(args.queries):
            try:
                with open(path, "rb") as f:
                    data = f.read()
            except OSError as e:
                results.append(QueryResult(path, None, error=f"cannot read: {e.strerror or e}"))
                continue
            results.append(searcher.search_bytes(data, path, args.top_k))
        labelled = []
        pairs = (searcher.gallery.queries() if args.retrieval_set else
                 split_queries(args.gallery, args.query_split) if args.query_split else [])
        if pairs:
            queries = [(item.image_id, image, item.label) for item, image in pairs]
            labelled = searcher.search_images(queries, args.top_k)
            results += labelled
    except RigError as e:
        print(f"unibed search: {e}", file=sys.stderr)
        return 2

    for r in results:
        print(f"query {r.name}" + (f"  (label {r.label})" if r.label >= 0 else ""))
        if r.error:
            print(f"  error: {r.error}")
        for m in r.matches:
            print(f"  {m.rank:3d}  d={m.distance:.4f}  {m.item.label_name or '-'} ({m.item.label})  "
                  f"{m.item.source}  {m.item.image_id}")
    if labelled:
        print(f"{len(labelled)} {args.query_split or 'retrieval-set'} queries: top-1 same label {top1_rate(labelled):.3f}, "
              f"P@5 {precision_at(labelled, 5):.3f}")

    thumbs: dict[str, bytes] = {}

    def thumbnail(image_id: str) -> bytes:
        if image_id not in thumbs:
            thumbs[image_id] = thumbnail_jpeg(searcher.read_image(image_id))
        return thumbs[image_id]

    html_path, png_path = os.path.join(args.out, "report.html"), os.path.join(args.out, "contact_sheet.png")
    report.write_html_report(html_path, results, thumbnail, title=f"unibed search: {args.gallery or args.retrieval_set}")
    report.write_contact_sheet(png_path, results, searcher.read_image)
    print(f"report: {html_path}; contact sheet: {png_path}")
    failed = sum(1 for r in results if r.error)
    if failed:
        print(f"unibed search: {failed} of {len(results)} queries could not be searched (see above)",
              file=sys.stderr)
        return 1
    return 0


def cmd_serve(args) -> int:
    import uvicorn

    from unibed.retrieval.errors import RigError
    from unibed.retrieval.web import create_app

    try:
        searcher = _searcher(args)
    except RigError as e:
        print(f"unibed serve: {e}", file=sys.stderr)
        return 2
    app = create_app(searcher, top_k=args.top_k, max_upload_bytes=int(args.max_upload_mb * 1024 * 1024),
                     source_thumbnails=not args.no_source_thumbnails)
    print(f"serving {args.gallery or args.retrieval_set} on http://{args.host}:{args.port}/", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m unibed.cli.search search|serve ...` (the same subcommands `unibed` adds)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m unibed.cli.search")
    sub = parser.add_subparsers(dest="command", required=True)
    add_search_parser(sub)
    add_serve_parser(sub)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
