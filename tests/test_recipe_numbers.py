"""Recipe numbers are numbers: YAML's booleans (true, yes, on) and quoted digits are refused
with the field's path, where pydantic's lax mode read true as 1 and "10" as 10."""

from __future__ import annotations

import typing

import pytest
from pydantic import BaseModel

from unibed.schemas.errors import SchemaError
from unibed.schemas.reader_specs import ListingSpec
from unibed.schemas.recipe import Recipe, SourceSpec, parse_recipe, recipe_from_text

SAMPLE = "recipes/sample.yaml"


def sample_text(old: str = "", new: str = "") -> str:
    with open(SAMPLE) as f:
        text = f.read()
    assert old in text
    return text.replace(old, new, 1)


@pytest.mark.parametrize("old, new, field, message", [
    ("near_hamming_threshold: 10", "near_hamming_threshold: true", "dedup.near_hamming_threshold",
     "got the boolean true"),
    ("per_class_cap: 50", "per_class_cap: yes", "sources.0.per_class_cap", "got the boolean true"),
    ("shorter_side: 288", "shorter_side: 288.5", "image.shorter_side", "fractional part"),
    ("jpeg_quality: 90", "jpeg_quality: '90'", "image.jpeg_quality", "got the string '90'"),
    ("validation_fraction: 0.1", "validation_fraction: off", "split.validation_fraction",
     "got the boolean false"),
    ("exact: true", "exact: 1", "dedup.exact", "valid boolean"),
])
def test_a_recipe_number_of_another_type_is_refused_naming_the_field(old, new, field, message):
    with pytest.raises(SchemaError) as error:
        recipe_from_text(sample_text(old, new), where="bad.yaml")
    line = next(line for line in str(error.value).splitlines() if field in line)
    assert message in line and str(error.value).startswith("bad.yaml: invalid recipe")


def test_good_recipes_still_parse():
    recipe = recipe_from_text(sample_text(), where=SAMPLE)
    assert recipe.dedup.near_hamming_threshold == 10 and recipe.sources[0].per_class_cap == 50
    off = recipe_from_text(sample_text("near_hamming_threshold: 10", "near_hamming_threshold: null"),
                           where=SAMPLE)
    assert off.dedup.near_hamming_threshold is None  # null still turns the search off
    whole = recipe_from_text(sample_text("shorter_side: 288", "shorter_side: 288.0"), where=SAMPLE)
    assert type(whole.image.shorter_side) is int and whole.digest() == recipe.digest()
    zero = recipe_from_text(sample_text("validation_fraction: 0.1", "validation_fraction: 0"),
                            where=SAMPLE)
    assert zero.split.validation_fraction == 0.0


def _is_number(annotation) -> bool:
    if annotation in (int, float):
        return True
    if typing.get_origin(annotation) is typing.Literal:
        return all(type(a) is int for a in typing.get_args(annotation))
    return any(_is_number(a) for a in typing.get_args(annotation))


def _model_in(annotation) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return next(filter(None, map(_model_in, typing.get_args(annotation))), None)


def number_fields(model: type[BaseModel], path: tuple = ()) -> list[tuple]:
    """The path of every number field of the recipe's models (a tuple of models: its first)."""
    paths = []
    for name, info in model.model_fields.items():
        nested = _model_in(info.annotation)
        if nested is not None:
            many = typing.get_origin(info.annotation) is tuple
            paths += number_fields(nested, (*path, name, *((0,) if many else ())))
        elif _is_number(info.annotation):
            paths.append((*path, name))
    return paths


def _with_every_block(text: str) -> dict:
    """The recipe with a listing source first, so that every optional block's
    fields (the listing's column positions) are there to spoil."""
    data = recipe_from_text(text, where=SAMPLE).to_dict()
    listing = ListingSpec(files={"train": "l.txt"}, header=False, path_column=0, label_column=1, name_column=2)
    data["sources"].insert(0, SourceSpec(name="mine", reader="listing", location="x",
                                         listing=listing).model_dump(mode="json"))
    return data


def test_every_number_field_of_every_recipe_model_refuses_a_boolean():
    fields = number_fields(Recipe)
    assert ("image", "shorter_side") in fields and ("sources", 0, "classes", "k") in fields
    assert ("sources", 0, "listing", "path_column") in fields
    assert len(fields) >= 14
    with open("recipes/sample-eval.yaml") as f:  # the sample recipe with every section, evaluation too
        every_section = f.read()
    for path in fields:
        data = _with_every_block(every_section)
        parent = data
        for key in path[:-1]:
            parent = parent[key]
        parent[path[-1]] = True
        with pytest.raises(SchemaError, match="boolean") as error:
            parse_recipe(data)
        assert ".".join(map(str, path)) in str(error.value)
