"""Retrieval evaluation: embed a query split and an index split, exact k-NN, mP@k.

The competition's protocol (REFERENCE section 5) on our own splits:

- closed set: the validation records are the queries, the train records the
  index (classes the model trained on). The split guarantees no validation
  image near-duplicates a train image (DESIGN.md, leak guard), so a query
  cannot score by finding its own copy;
- open set (GUIE's setting): the build's evaluation split, retrieval-query
  against retrieval-index, classes the model never saw (`evaluate_open_set`),
  or an outside set (`unibed/trainer/outside_set.py`), scored the same way.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from unibed.schemas.heldout import INDEX_SPLIT, QUERY_SPLIT
from unibed.schemas.manifest import Manifest
from unibed.trainer.data import eval_dataset
from unibed.trainer.metrics import knn, precision_at_k


@dataclass
class EvalResult:
    mp_at_k: float  # over queries with >= 1 relevant index image
    k: int
    per_source: dict[str, float]  # query source -> mP@k; a source none of whose queries can match is left out
    num_queries: int
    num_index: int
    queries_without_match: int  # n_q = 0: excluded from the means (unibed/trainer/metrics.py says why)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class Embedded:
    embeddings: np.ndarray  # float32 [N, D]
    labels: np.ndarray  # int64 [N]
    sources: np.ndarray  # str [N]
    image_ids: np.ndarray  # str [N]


def embed_split(embed_fn: Callable, dataset_dir: str, manifest: Manifest, split: str, *,
                image_size: int, batch_size: int) -> Embedded:
    """Run `embed_fn` (uint8 [B, S, S, 3] np.ndarray -> [B, D]) over a split in stored order."""
    chunks, labels, sources, ids = [], [], [], []
    for batch in eval_dataset(dataset_dir, manifest, split, batch_size=batch_size, image_size=image_size):
        images = batch["image"].numpy()
        out = np.asarray(embed_fn(images), dtype=np.float32)
        if out.ndim != 2 or out.shape[0] != images.shape[0]:
            raise ValueError(f"embed_fn must return [B={images.shape[0]}, D], got shape {out.shape}")
        chunks.append(out)
        labels.append(batch["label"].numpy())
        sources += [s.decode() for s in batch["source"].numpy()]
        ids += [s.decode() for s in batch["image_id"].numpy()]
    embeddings = np.concatenate(chunks)
    expected = manifest.splits[split].num_records
    if len(embeddings) != expected:
        raise ValueError(f"{split}: read {len(embeddings)} records, the manifest lists {expected}")
    return Embedded(embeddings, np.concatenate(labels).astype(np.int64), np.array(sources), np.array(ids))


def evaluate(embed_fn: Callable, dataset_dir: str, manifest: Manifest, *, image_size: int, batch_size: int,
             query_split: str = "validation", index_split: str = "train", k: int = 5) -> EvalResult:
    """mP@k of `embed_fn` with `query_split` as queries against `index_split`."""
    queries = embed_split(embed_fn, dataset_dir, manifest, query_split, image_size=image_size, batch_size=batch_size)
    index = embed_split(embed_fn, dataset_dir, manifest, index_split, image_size=image_size, batch_size=batch_size)
    return score(queries, index, k, f"{query_split} queries", f"{index_split} image")


def has_open_set(manifest: Manifest) -> bool:
    """Whether the build wrote an evaluation split of held-out classes."""
    return manifest.evaluation is not None and QUERY_SPLIT in manifest.splits and INDEX_SPLIT in manifest.splits


def evaluate_open_set(embed_fn: Callable, dataset_dir: str, manifest: Manifest, *, image_size: int,
                      batch_size: int, k: int = 5) -> EvalResult | None:
    """mP@k on the classes the model never trained on (None when the build has no such split)."""
    if not has_open_set(manifest):
        return None
    return evaluate(embed_fn, dataset_dir, manifest, image_size=image_size, batch_size=batch_size,
                    query_split=QUERY_SPLIT, index_split=INDEX_SPLIT, k=k)


def score(queries: Embedded, index: Embedded, k: int, what_queries: str = "queries",
          what_index: str = "index image") -> EvalResult:
    """mP@k of embedded queries against an embedded index, per query source (domain).
    A hit repeated in a list counts once (image ids)."""
    if queries.embeddings.shape[1] != index.embeddings.shape[1]:
        raise ValueError("embed_fn returned different dimensions for queries and index")
    _, neighbours = knn(queries.embeddings, index.embeddings, k)
    per_query = precision_at_k(queries.labels, index.labels[neighbours], index.labels,
                               index.image_ids[neighbours], index.image_ids)
    scored = ~np.isnan(per_query)
    if not scored.any():
        raise ValueError(f"none of the {len(per_query)} {what_queries} has a relevant {what_index}")
    per_source = {
        str(source): float(per_query[(queries.sources == source) & scored].mean())
        for source in sorted(set(queries.sources[scored]))
    }
    return EvalResult(
        mp_at_k=float(per_query[scored].mean()),
        k=k,
        per_source=per_source,
        num_queries=len(per_query),
        num_index=len(index.labels),
        queries_without_match=int((~scored).sum()),
    )
