"""The errors the rig reports to a user as one line (bad model, gallery, index or cache)."""

from __future__ import annotations

from unibed.retrieval.embedder import ModelError
from unibed.retrieval.gallery import GalleryError
from unibed.retrieval.index import IndexError_
from unibed.schemas.errors import SchemaError

RigError = (ModelError, GalleryError, IndexError_, SchemaError, OSError)
