"""The evaluation split's roles, per held-out class and deterministic.

After dedup, inside each held-out class, images are ordered by
sha256(salt, "role", key): the first min(queries_per_class, n - 1) are
queries (so a query class keeps at least one index image), the rest index
images; a distractor class's images are all index images.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from unibed.schemas.heldout import INDEX_SPLIT, QUERY_SPLIT, HeldOutMap
from unibed.schemas.recipe import EvaluationSpec


@dataclass(frozen=True)
class RetrievalRoles:
    """What AssignSplits needs to tell held-out classes apart and give roles."""

    first_id: int  # held-out ids start here
    distractor_ids: frozenset[int]
    queries_per_class: int
    salt: str

    @classmethod
    def of(cls, spec: EvaluationSpec, heldout: HeldOutMap) -> RetrievalRoles:
        return cls(heldout.first_id, heldout.distractor_ids(), spec.queries_per_class, spec.salt)

    def holds(self, label: int) -> bool:
        return label >= self.first_id


def roles_of_class(keys: list[str], label: int, roles: RetrievalRoles) -> dict[str, str]:
    order = sorted(keys, key=lambda k: hashlib.sha256(f"{roles.salt}\0role\0{k}".encode()).digest())
    queries = 0 if label in roles.distractor_ids else min(roles.queries_per_class, len(order) - 1)
    return {k: QUERY_SPLIT if i < queries else INDEX_SPLIT for i, k in enumerate(order)}
