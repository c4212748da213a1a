"""The README's parameter tables, from the declarations: the training methods (what each does
and its parameters), the attack budgets and the randomized-smoothing settings (one row per
parameter)."""

from __future__ import annotations

from typing import Any

from lmt.docs.parameters import Parameter, in_repository, parameters, summary
from lmt.docs.schema import documented_attacks
from lmt.methods import get_method_spec, list_methods

_SYMBOLS = {"ge": "≥", "gt": ">", "le": "≤", "lt": "<"}


def literal(value: Any) -> str:
    """A value as it is written in a config: ``true``, ``null``, ``0.001``, `` `margin` ``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return f"`{value}`" if isinstance(value, str) else repr(value)


def allowed(p: Parameter) -> str:
    """The range (``≥ 1``, ``> 0, < 1``) or the choices of a parameter; "—" when any value goes."""
    if p.choices is not None:
        return "one of " + ", ".join(literal(c) for c in p.choices)
    return ", ".join(f"{_SYMBOLS[key]} {value:g}" for key, value in p.bounds.items()) or "—"


def _described(p: Parameter) -> str:
    """``name = default (range): meaning`` of one parameter."""
    limits = allowed(p)
    return f"`{p.name}` = {literal(p.default)}" + ("" if limits == "—" else f" ({limits})") + f": {p.doc}"


def _row(*cells: str) -> str:
    return "| " + " | ".join(cell.replace("|", r"\|") for cell in cells) + " |"


def methods_table() -> str:
    """``| name | what | parameters (defaults) |``: one row per method defined in this repository."""
    rows = [_row("name", "what", "parameters (defaults)"), "|---|---|---|"]
    for name in list_methods():
        cls = get_method_spec(name, {})[0]
        if not in_repository(cls):
            continue
        params = "<br>".join(_described(p) for p in parameters(cls.Params))
        rows.append(_row(f"`{name}`", summary(cls), params or "—"))
    return "\n".join(rows) + "\n"


def smoothing_table() -> str:
    """``| parameter | default | range | meaning |``: the randomized-smoothing settings."""
    from lmt.smoothing import SmoothingSettings

    rows = [_row("parameter", "default", "range", "meaning"), "|---|---|---|---|"]
    rows += [_row(f"`{p.name}`", literal(p.default), allowed(p), p.doc) for p in parameters(SmoothingSettings)]
    return "\n".join(rows) + "\n"


def attack_budget_table() -> str:
    """``| attack | parameter | default | range | meaning |``: every budget parameter."""
    rows = [_row("attack", "parameter", "default", "range", "meaning"), "|---|---|---|---|---|"]
    for name, cls in documented_attacks().items():
        rows += [_row(f"`{name}`", f"`{p.name}`", literal(p.default), allowed(p), p.doc) for p in parameters(cls)]
    return "\n".join(rows) + "\n"
