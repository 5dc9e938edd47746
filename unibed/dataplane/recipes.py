"""Reading a recipe from wherever it lives (local path or gs://)."""

from __future__ import annotations

from unibed.dataplane import storage
from unibed.schemas.errors import SchemaError
from unibed.schemas.recipe import Recipe, recipe_from_text


def load_recipe(path: str, **overrides) -> Recipe:
    """Read a recipe (YAML or JSON; local or gs://), apply top-level overrides, validate."""
    try:
        text = storage.read_text(path)
    except Exception as e:  # noqa: BLE001 - any IO failure becomes one clear message
        raise SchemaError(f"{path}: cannot read recipe: {e}") from None
    return recipe_from_text(text, path, **overrides)
