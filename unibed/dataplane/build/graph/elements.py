"""What flows between the build's stages: an image that decoded (Candidate,
inside Preprocess only) leaves it as its metadata without the bytes (Meta),
on which every decision is taken, and as what the split join needs to write
it (WriteInput).

Every field of a record in a shuffle is held by the local runner for every
image until the stage that reads it runs, as decoded Python objects in its
grouping tables, so the records carry only what their readers need, packed:
Meta has no location (only ResolveKeys needs it, and gets it beside the
Meta), its probe hashes are one bytes object (robust_hashes.pack_probes: 9
bytes per probe instead of a tuple, a string and an int, ~1 KB less per
image) and its sha256 the 32-byte digest, not 64 hex characters."""

from __future__ import annotations

from dataclasses import dataclass

from unibed.dataplane.build.payload import PayloadRef
from unibed.dataplane.images.robust_hashes import pack_probes, unpack_probes

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
    sha256: str  # hex
    preference: tuple  # keep_rule.preference(...)
    probes: tuple[tuple[str, int], ...] = ()  # (kind, hash): images.robust_hashes

    def meta(self) -> Meta:
        return Meta(
            self.key, self.source, str(self.label), self.phash, bytes.fromhex(self.sha256),
            self.preference, pack_probes(self.probes),
        )

    def write_input(self) -> WriteInput:
        return (self.where, self.source, self.label, self.payload)


@dataclass(frozen=True, slots=True)
class Meta:
    key: str
    source: str
    label: str  # unified id as text, or "exclusion"
    phash: int
    sha256: bytes  # the digest: only compared
    preference: tuple
    packed_probes: bytes = b""  # robust_hashes.pack_probes

    @property
    def probes(self) -> tuple[tuple[str, int], ...]:
        """(kind, hash) per probe: images.robust_hashes."""
        return unpack_probes(self.packed_probes)


# What the split join needs of a candidate: (where, source, label, payload). A plain
# tuple: Beam encodes it field by field, a dataclass would be pickled with its class name.
WriteInput = tuple[str, str, int, PayloadRef]
