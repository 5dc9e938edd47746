"""AssignSplits: the survivors' train/validation split, class by class
(unibed/dataplane/build/split.py decides it inside one class)."""

from __future__ import annotations

import apache_beam as beam

from unibed.dataplane.build.split import split_class
from unibed.schemas.recipe import SplitSpec


class AssignSplits(beam.PTransform):
    """(label, key) -> (key, split) for every surviving image."""

    def __init__(self, spec: SplitSpec):
        super().__init__()
        self._spec = spec

    def expand(self, survivors):
        return (
            survivors
            | "Classes" >> beam.GroupByKey()
            | "Split" >> beam.FlatMap(split_of_class, self._spec.validation_fraction, self._spec.salt)
        )


def split_of_class(element, fraction: float, salt: str):
    _, keys = element
    yield from split_class(sorted(keys), fraction, salt).items()
