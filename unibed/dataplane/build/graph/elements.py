"""What flows between the build's stages: an image that decoded (Candidate)
and its metadata without the bytes (Meta), on which every decision is taken."""

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
            self.key, self.source, str(self.label), self.where, self.phash, self.sha256,
            self.preference, self.probes,
        )


@dataclass(frozen=True, slots=True)
class Meta:
    key: str
    source: str
    label: str  # unified id as text, or "exclusion"
    where: str
    phash: int
    sha256: str
    preference: tuple
    probes: tuple[tuple[str, int], ...] = ()  # (kind, hash): images.robust_hashes


def keyed(meta: Meta) -> tuple[str, Meta]:
    return meta.key, meta
