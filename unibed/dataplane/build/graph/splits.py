"""AssignSplits: the survivors' train/validation split, class by class
(unibed/dataplane/build/split.py decides it inside one class); a held-out
class's images get their evaluation roles instead (retrieval_split.py)."""

from __future__ import annotations

import apache_beam as beam

from unibed.dataplane.build.retrieval_split import RetrievalRoles, roles_of_class
from unibed.dataplane.build.split import split_class
from unibed.schemas.recipe import SplitSpec


class AssignSplits(beam.PTransform):
    """(label, key) -> (key, ("split", split)) for every surviving image: tagged for
    the split join (graph/join.py)."""

    def __init__(self, spec: SplitSpec, roles: RetrievalRoles | None = None):
        super().__init__()
        self._spec = spec
        self._roles = roles

    def expand(self, survivors):
        return (
            survivors
            | "Classes" >> beam.GroupByKey()
            | "Split" >> beam.FlatMap(split_of_class, self._spec.validation_fraction, self._spec.salt, self._roles)
        )


def split_of_class(element, fraction: float, salt: str, roles: RetrievalRoles | None = None):
    label, keys = element
    if roles is not None and roles.holds(int(label)):
        splits = roles_of_class(sorted(keys), int(label), roles)
    else:
        splits = split_class(sorted(keys), fraction, salt)
    for key, split in splits.items():
        yield key, ("split", split)
