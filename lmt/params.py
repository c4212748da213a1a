"""Typed parameters of methods and attacks: strict checks shared by both registries.

A method's ``Params`` and an attack class are frozen dataclasses whose fields are the
parameters a config may set. Each field is declared once with :func:`param`: its default, what
it means, and its range or choices. :class:`CheckedParams` enforces those ranges and choices
after ``__init__``; :mod:`lmt.docs` writes the same declarations into the config schema and
the README. :func:`check_params` turns a config mapping into an instance, rejecting unknown
names and ill-typed values (a float for an int, a bool for a number, NaN/inf, a string for a
bool); relations between fields are checked by extending ``__post_init__`` and raising
:class:`ParamError`. Every error names the parameter, so :mod:`lmt.config` can report the full
config key.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import math
import operator
import types
import typing
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, TypeVar

T = TypeVar("T")


class ParamError(ValueError):
    """A parameter value that is ill-typed or out of range; ``param`` names it (None when the
    problem concerns the parameter set as a whole) and ``where`` what it belongs to."""

    def __init__(self, param: str | None, problem: str, where: str = "") -> None:
        self.param, self.problem, self.where = param, problem, where
        subject = f"parameter {param!r} {problem}" if param else problem
        super().__init__(f"{where}: {subject}" if where else subject)


def check_params(cls: type[T], values: Mapping[str, Any] | None, where: str) -> T:
    """An instance of the dataclass ``cls`` built from ``values``, after strict checks.

    ``where`` says whose parameters these are (e.g. ``"method 'lmt'"``) in error messages.
    Unknown names raise :class:`TypeError`; bad values raise :class:`ParamError`.
    Ints given for float fields become floats.
    """
    values = dict(values or {})
    fields = [f for f in dataclasses.fields(cls) if f.init]  # type: ignore[arg-type]
    allowed = [f.name for f in fields]
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        raise TypeError(f"{where} has no parameter(s) {unknown}; it takes {allowed or 'none'}")
    hints = typing.get_type_hints(cls)
    checked = {name: _checked_value(name, value, hints[name], where) for name, value in values.items()}
    try:
        return cls(**checked)
    except ParamError as err:
        raise ParamError(err.param, err.problem, where) from None


def field_annotation(cls: type, name: str) -> Any:
    """The type annotation of the parameter ``name`` of the dataclass ``cls`` (TypeError for a
    name it does not take), for checks of one value outside a whole parameter set."""
    hints = typing.get_type_hints(cls)
    if name not in {f.name for f in dataclasses.fields(cls) if f.init}:  # type: ignore[arg-type]
        raise TypeError(f"{cls.__qualname__} has no parameter {name!r}")
    return hints[name]


def is_sequence_type(annotation: Any) -> bool:
    """Whether a parameter of this annotation holds a list or tuple (a list is then its value)."""
    sequences = (list, tuple, collections.abc.Sequence, collections.abc.MutableSequence)
    return any(option in sequences or typing.get_origin(option) in sequences for option in _union_members(annotation))


def check_value(cls: type, name: str, value: Any, where: str) -> Any:
    """``value`` of the parameter ``name`` of ``cls`` as :func:`check_params` would store it
    (an int given for a float field becomes a float), or a :class:`ParamError` naming it. Only
    the field's type is checked here: ranges and relations are checked with the whole set."""
    return _checked_value(name, value, field_annotation(cls, name), where)


def _checked_value(name: str, value: Any, annotation: Any, where: str) -> Any:
    """``value`` if it has the annotated type (an int as a float for float fields)."""
    options = _union_members(annotation)
    if value is None and type(None) in options:
        return None
    for option in options:
        if option is not type(None) and _matches(value, option):
            return float(value) if option is float else value
    raise ParamError(name, f"must be {_describe(options)}, got {value!r} ({type(value).__name__})", where)


def _union_members(annotation: Any) -> tuple[Any, ...]:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return typing.get_args(annotation)
    return (annotation,)


def _matches(value: Any, expected: Any) -> bool:
    """Strict isinstance: bools are not numbers, floats are not ints, numbers are finite."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if expected is bool:
        return isinstance(value, bool)
    if expected is int:
        return number and isinstance(value, int)
    if expected is float:
        return number and math.isfinite(value)
    if expected is str:
        return isinstance(value, str)
    return True  # other annotations are left to the class's own __post_init__


_NAMES = {bool: "true or false", int: "an integer", float: "a finite number", str: "a string", type(None): "null"}


def _describe(options: tuple[Any, ...]) -> str:
    return " or ".join(_NAMES.get(o, str(o)) for o in options)


def check_bounds(
    owner: object, *names: str,
    ge: float | None = None, gt: float | None = None, le: float | None = None, lt: float | None = None,
) -> None:
    """Raise :class:`ParamError` for the first field of ``owner`` in ``names`` outside the
    bounds (``ge``: ≥, ``gt``: >, ``le``: ≤, ``lt``: <); None values are skipped."""
    for name in names:
        value = getattr(owner, name)
        if value is None:
            continue
        for bound, holds, symbol in ((ge, operator.ge, "≥"), (gt, operator.gt, ">"), (le, operator.le, "≤"), (lt, operator.lt, "<")):
            if bound is not None and not holds(value, bound):
                raise ParamError(name, f"must be {symbol} {bound:g}, got {value!r}")


@dataclass(frozen=True)
class Declaration:
    """What :func:`param` declares about a field besides its default: ``doc`` (one sentence for
    the schema and README), ``bounds`` (keywords of :func:`check_bounds`: ge, gt, le, lt) and
    ``choices`` (the allowed values, or None for any)."""

    doc: str
    bounds: Mapping[str, float]
    choices: tuple[Any, ...] | None = None


_DECLARATION = "lmt.params"  # the key of a field's Declaration in its metadata


def param(
    default: Any, doc: str, *,
    ge: float | None = None, gt: float | None = None, le: float | None = None, lt: float | None = None,
    choices: Iterable[Any] | None = None,
) -> Any:
    """A parameter field: ``default``, its meaning ``doc`` and its range (``ge``: ≥, ``gt``: >,
    ``le``: ≤, ``lt``: <) or ``choices``, declared once for the checks and the documentation."""
    bounds = {key: value for key, value in (("ge", ge), ("gt", gt), ("le", le), ("lt", lt)) if value is not None}
    declared = Declaration(doc, bounds, None if choices is None else tuple(choices))
    return dataclasses.field(default=default, metadata={_DECLARATION: declared})


def declaration(field: dataclasses.Field) -> Declaration | None:
    """The :class:`Declaration` of a field made with :func:`param` (None for a plain field)."""
    return field.metadata.get(_DECLARATION)


class CheckedParams:
    """Base of parameter dataclasses: after ``__init__`` every field declared with :func:`param`
    is checked against its range and choices (a :class:`ParamError` naming it). Subclasses that
    relate fields extend ``__post_init__`` (calling this one first)."""

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):  # type: ignore[arg-type]
            declared = declaration(field)
            if declared is None:
                continue
            check_bounds(self, field.name, **declared.bounds)
            value = getattr(self, field.name)
            if declared.choices is not None and value is not None and value not in declared.choices:
                raise ParamError(field.name, f"must be one of {list(declared.choices)}, got {value!r}")
