"""Prefect flow `fetch-sources`: bring the published archives into a staging location.

One task per source, run concurrently; each fetches its files with a thread
pool (unibed/fetch) into `<staging>/<source>`, the folder `unibed build` then
reads. Progress (bytes, files, MB/s, ETA) goes to the run's log every few
seconds and to a progress artifact per source. GLDv2 comes from its public
URLs; Products-10K and ImageNet need registration, so they are fetched only
from a base the user gives (http(s)://, gs:// or a folder). A rerun skips what
is staged and verified and resumes what is partial.
"""

from __future__ import annotations

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE

from unibed.dataplane import storage
from unibed.dataplane.fetch import (
    GLDV2_URL,
    FetchError,
    FetchFailed,
    FetchItem,
    FetchOptions,
    RetryPolicy,
    Snapshot,
    fetch_items,
    plan_sources,
)


@task(name="fetch-source", cache_policy=NO_CACHE, task_run_name="fetch-{source}")
def fetch_source(source: str, items: list[FetchItem], root: str, options: FetchOptions) -> dict:
    logger = get_run_logger()
    artifact = create_progress_artifact(0.0, key=f"fetch-{source}",
                                        description=f"{source}: {len(items)} files into {root}")

    def report(snapshot: Snapshot) -> None:
        logger.info(snapshot.line())
        update_progress_artifact(artifact, round(100 * snapshot.fraction, 1))

    summary = fetch_items(items, root, options, on_progress=report, warn=logger.warning, label=source)
    return summary.as_dict()


@flow(name="fetch-sources")
def fetch_sources_flow(
    staging: str,
    gldv2_url: str | None = GLDV2_URL,
    gldv2_tars: int = 500,
    gldv2_attribution: bool = False,
    products10k_url: str | None = None,
    products10k_files: list[str] | None = None,
    imagenet_url: str | None = None,
    imagenet_files: list[str] | None = None,
    md5: dict[str, dict[str, str]] | None = None,
    workers: int = 8,
    part_size_mb: float = 64,
    retries: int = 5,
    progress_every: float = 5.0,
) -> dict:
    """Stage each source under `<staging>/<source>` (local or gs://). A source is
    fetched when its URL is set (gldv2 by default, from the public bucket);
    `md5` = {source: {file name: md5 hex}} for files whose checksum the user knows."""
    plans = plan_sources(gldv2_url, gldv2_tars, gldv2_attribution, products10k_url, products10k_files,
                         imagenet_url, imagenet_files, md5)
    options = FetchOptions(workers=workers, part_size=max(1, int(part_size_mb * (1 << 20))),
                           retry=RetryPolicy(retries=retries), progress_every=progress_every)
    futures = {source: fetch_source.submit(source, items, storage.join(staging, source), options)
               for source, items in plans.items()}
    results = _gather(futures, staging)
    get_run_logger().info("staged under %s: %s", staging, ", ".join(
        f"{s} {r['files']} files ({r['fetched']} fetched)" for s, r in results.items()))
    return results


def _gather(futures: dict, staging: str) -> dict:
    """Each source's summary; the files that failed, of every source, as one FetchFailed
    (what `unibed fetch` prints a line for); anything else is a bug, raised as such."""
    results, failures, staged_as, unexpected = {}, {}, {}, {}
    for source, future in futures.items():
        future.wait()
        try:
            results[source] = future.result()
        except FetchFailed as err:
            failures.update(err.failures)
            staged_as.update(err.staged_as)
        except FetchError as err:  # the whole source, e.g. no room for it
            failures[storage.join(staging, source)] = str(err)
        except Exception as err:  # noqa: BLE001 - reported with the others below
            unexpected[source] = f"{type(err).__name__}: {err}"
    if unexpected:
        raise RuntimeError("fetch failed for " + "; ".join(f"{s}: {m}" for s, m in unexpected.items()))
    if failures:
        raise FetchFailed(failures, staged_as)
    return results
