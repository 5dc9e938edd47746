"""Retrieval evaluation: embed a query split and an index split, exact k-NN, mP@k.

The competition's protocol (REFERENCE section 5) on our own splits: the
validation records are the queries, the train records the index. The split
guarantees no validation image near-duplicates a train image (DESIGN.md,
leak guard), so a query cannot score by finding its own copy.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

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
    if queries.embeddings.shape[1] != index.embeddings.shape[1]:
        raise ValueError("embed_fn returned different dimensions for queries and index")
    _, neighbours = knn(queries.embeddings, index.embeddings, k)
    per_query = precision_at_k(queries.labels, index.labels[neighbours], index.labels)
    scored = ~np.isnan(per_query)
    if not scored.any():
        raise ValueError(f"none of the {len(per_query)} {query_split} queries has a relevant {index_split} image")
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
