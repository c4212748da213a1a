"""What the documentation says about a parameter class: read from the declarations, never copied.

A parameter is a dataclass field declared with :func:`lmt.params.param`; a class (an attack or a
training method) is summed up by the first paragraph of its docstring. Only classes defined in
this repository are documented (plugins registered at run time are not).
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from lmt.params import declaration

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Parameter:
    """One declared parameter: ``types`` are its annotation's members (``NoneType`` for null)."""

    name: str
    types: tuple[type, ...]
    default: Any
    doc: str
    bounds: Mapping[str, float]
    choices: tuple[Any, ...] | None


def parameters(cls: type) -> list[Parameter]:
    """The parameters of the dataclass ``cls`` in field order; a field not declared with
    :func:`lmt.params.param` is an error naming it (it would go undocumented)."""
    hints = typing.get_type_hints(cls)
    found = []
    for field in dataclasses.fields(cls):
        declared = declaration(field)
        if declared is None:
            raise TypeError(f"{cls.__qualname__}.{field.name} is not declared with lmt.params.param(default, doc, …)")
        types = typing.get_args(hints[field.name]) or (hints[field.name],)
        found.append(Parameter(field.name, types, field.default, declared.doc, declared.bounds, declared.choices))
    return found


def summary(cls: type) -> str:
    """The first paragraph of ``cls``'s own docstring, on one line."""
    doc = cls.__dict__.get("__doc__")
    if not doc or doc.startswith(f"{cls.__name__}("):  # none, or the signature @dataclass writes
        raise TypeError(f"{cls.__qualname__} needs a docstring: its first paragraph is its description")
    return " ".join(inspect.cleandoc(doc).split("\n\n")[0].split())


def in_repository(cls: type) -> bool:
    """Whether ``cls`` is defined in this repository's source tree."""
    return REPO in Path(inspect.getfile(cls)).resolve().parents
