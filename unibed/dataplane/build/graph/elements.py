"""What flows between the build's stages: an image that decoded (Candidate)
and its metadata without the bytes (Meta), on which every decision is taken.

Every field of a record in a shuffle is held by the local runner for every
image until the stage that reads it runs, so the records carry only what
their readers need: Meta has no location (only ResolveKeys needs it, and gets
it beside the Meta), and the split join gets a WriteInput, not the Candidate."""

from __future__ import annotations

from dataclasses import dataclass

from unibed.dataplane.build.payload import PayloadRef

EXCLUSION = "exclusion"  # the source and label of exclusion-set images


@dataclass(frozen=True, slots=True)
class Candidate:
    """An input image that decoded: what the rest of the build needs of it."""

    key: str  # source/image_id
    source: str
    image_id: str
    source_label: str
    label: int  # unified id (-1 for exclusion images)
    where: str  # its location, to tell apart two inputs that share a key
    payload: PayloadRef | None  # its serialized Example, in a work file (None only while made)
    width: int
    height: int
    phash: int
    sha256: str
    preference: tuple  # keep_rule.preference(...)
    probes: tuple[tuple[str, int], ...] = ()  # (kind, hash): images.robust_hashes

    def meta(self) -> Meta:
        return Meta(
            self.key, self.source, str(self.label), self.phash, self.sha256,
            self.preference, self.probes,
        )

    def write_input(self) -> WriteInput:
        return (self.where, self.source, self.label, self.payload)


@dataclass(frozen=True, slots=True)
class Meta:
    key: str
    source: str
    label: str  # unified id as text, or "exclusion"
    phash: int
    sha256: str
    preference: tuple
    probes: tuple[tuple[str, int], ...] = ()  # (kind, hash): images.robust_hashes


# What the split join needs of a candidate: (where, source, label, payload). A plain
# tuple: Beam encodes it field by field, a dataclass would be pickled with its class name.
WriteInput = tuple[str, str, int, PayloadRef]


def keyed(meta: Meta) -> tuple[str, Meta]:
    return meta.key, meta
