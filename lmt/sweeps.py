"""Parameter sweeps: a method parameter written as a list runs the method once per value.

``methods: {lmt: {c: [1, 2, 4, 8]}}`` is shorthand for four tagged runs ``lmt.c1``, ``lmt.c2``,
``lmt.c4``, ``lmt.c8`` (each ``{c: 1.0}`` …), so a sweep is one line of config rather than a
copy-pasted block, and the reports know which runs belong together (the trade-off table and
figure, :mod:`lmt.report.tradeoff_table`). The rules:

* only a parameter whose ``Params`` field is a scalar may be swept; a list for a list-typed
  parameter is an error (it would be ambiguous: a sweep or the value);
* values are normalised by the field's type (``c: [2]`` gives ``{c: 2.0}``, exactly what
  ``lmt.c2: {c: 2.0}`` gives), then must be distinct, and the list non-empty;
* the run's tag is ``<param><value>`` with the value made label-safe (``2.5`` → ``2_5``,
  ``-1`` → ``m1``, ``1e-05`` → ``1em05``); several swept parameters give their cartesian
  product, tags joined with ``-`` (``lmt.c1-warmup_epochs5``); an existing tag stays in front
  (``lmt.big: {c: [1, 2]}`` → ``lmt.big-c1``, ``lmt.big-c2``);
* a generated label may not be configured otherwise (an explicit ``lmt.c2`` beside
  ``lmt: {c: [2]}`` is an error).

:func:`expand_methods` returns the expanded ``methods`` and the record of every sweep
(:class:`Expansion`), which :func:`lmt.config.validate_config` stores as the experiment's
``sweeps``: ``{base label: {"params": {param: [values]}, "runs": {label: {param: value}}}}``.
Entries it cannot expand (an unknown method or parameter) are left as they are, for the
registry's own checks to name.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from lmt.params import ParamError, check_value, field_annotation, is_sequence_type
from lmt.registry import split_label

TAG_JOIN = "-"  # between the tags of several swept parameters (and after an existing tag)

Sweeps = dict[str, dict[str, Any]]  # base label -> {"params": {p: [values]}, "runs": {label: {p: v}}}


class SweepError(ValueError):
    """A sweep that cannot be expanded; ``key`` is its place under ``methods`` (``lmt.c``)."""

    def __init__(self, key: str, problem: str) -> None:
        self.key, self.problem = key, problem
        super().__init__(f"methods.{key}: {problem}")


@dataclass(frozen=True)
class Expansion:
    """``methods`` with every sweep replaced (in place, in order) by its runs, and the record of
    each sweep by its configured (base) label."""

    methods: dict[str, Any]
    sweeps: Sweeps


def label_value(value: Any) -> str:
    """A value as it appears in a run's tag: integral floats without ``.0``, ``.`` as ``_``, a
    minus as ``m``; any other character a label may not hold becomes ``_``."""
    if isinstance(value, bool) or value is None:
        text = "null" if value is None else str(value).lower()
    elif isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        text = str(int(value))
    else:
        text = str(value)
    text = text.replace("-", "m").replace("+", "").replace(".", "_")
    return re.sub(r"[^A-Za-z0-9_]", "_", text)


def run_label(base: str, values: Mapping[str, Any]) -> str:
    """``lmt`` + ``{c: 1.0, warmup_epochs: 5.0}`` → ``lmt.c1-warmup_epochs5``; ``lmt.big`` +
    ``{c: 2.0}`` → ``lmt.big-c2``."""
    name, tag = split_label(base)
    parts = [tag] if tag else []
    parts += [f"{param}{label_value(value)}" for param, value in values.items()]
    return f"{name}.{TAG_JOIN.join(parts)}"


def expand_methods(methods: Mapping[str, Any]) -> Expansion:
    """Every sweep of ``methods`` expanded into its runs (see the module docstring); raises
    :class:`SweepError` naming the key of an empty list, a duplicate value, a list for a
    list-typed parameter, a value of the wrong type or a run label configured twice."""
    runs: list[tuple[str, Any, str | None]] = []  # (label, params, the sweep's base label or None)
    sweeps: Sweeps = {}
    for base, params in methods.items():
        swept = _swept_values(base, params)
        if not swept:
            runs.append((base, params, None))
            continue
        record: dict[str, dict[str, Any]] = {}
        for combination in itertools.product(*swept.values()):
            values = dict(zip(swept, combination))
            record[run_label(base, values)] = values
            runs.append((run_label(base, values), {k: values.get(k, v) for k, v in params.items()}, base))
        if len(record) != _count(swept):
            raise SweepError(base, f"distinct values give the same run label; labels: {sorted(record)}")
        sweeps[base] = {"params": {p: list(v) for p, v in swept.items()}, "runs": record}
    return Expansion(_unique(runs), sweeps)


def _count(swept: Mapping[str, list[Any]]) -> int:
    """How many runs a sweep makes: the product of its lists' lengths."""
    total = 1
    for values in swept.values():
        total *= len(values)
    return total


def _unique(runs: list[tuple[str, Any, str | None]]) -> dict[str, Any]:
    """Label → parameters; a label made twice (by a sweep and an explicit entry, or by two
    sweeps) is an error naming the sweep."""
    expanded: dict[str, Any] = {}
    made_by: dict[str, str | None] = {}
    for label, params, sweep in runs:
        if label in expanded:
            key = sweep or made_by[label]  # name a sweep, not the entry written out by hand
            rival = made_by[label] if key == sweep else sweep
            where = f"methods.{label}" if rival is None else f"the sweep methods.{rival}"
            raise SweepError(str(key), f"its run {label!r} is also configured by {where}")
        expanded[label], made_by[label] = params, sweep
    return expanded


def _swept_values(base: str, params: Any) -> dict[str, list[Any]]:
    """The swept parameters of one configured entry and their normalised values (empty for a
    plain entry, or one the registry must reject first: unknown method or parameter)."""
    if not isinstance(params, Mapping) or not any(isinstance(v, list) for v in params.values()):
        return {}
    from lmt.methods import METHODS

    try:
        cls = METHODS.entry(base).params
    except KeyError:
        return {}  # unknown method: validation names it
    if cls is None:
        return {}  # takes no parameters: validation says so
    swept = {}
    for param, values in params.items():
        if not isinstance(values, list):
            continue
        try:
            annotation = field_annotation(cls, param)
        except TypeError:
            return {}  # unknown parameter: validation names it
        if is_sequence_type(annotation):
            raise SweepError(f"{base}.{param}", "is a list-typed parameter and cannot be swept "
                                                "(only a scalar parameter's list of values is a sweep)")
        swept[param] = _normalised(base, param, values, cls)
    return swept


def _normalised(base: str, param: str, values: list[Any], cls: type) -> list[Any]:
    """The values as the parameter class stores them, non-empty and distinct."""
    key = f"{base}.{param}"
    if not values:
        raise SweepError(key, "an empty list sweeps over nothing; give at least one value")
    normalised = []
    for i, value in enumerate(values):
        try:
            normalised.append(check_value(cls, param, value, f"method {split_label(base)[0]!r}"))
        except ParamError as err:
            raise SweepError(key, f"value {i + 1} of the sweep {err.problem}") from None
    for i, value in enumerate(normalised):
        if value in normalised[:i]:
            raise SweepError(key, f"duplicate value {values[i]!r} in the sweep {values}; each value runs once")
    return normalised


def sweep_runs(sweep: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(label, {param: value}) of one recorded sweep, in the order of its parameters' values
    (the first parameter slowest), whatever order the record's mapping keeps."""
    params = sweep["params"]

    def position(item: tuple[str, Mapping[str, Any]]) -> tuple[int, ...]:
        return tuple(params[p].index(item[1][p]) for p in params)

    yield from ((label, dict(values)) for label, values in sorted(sweep["runs"].items(), key=position))
