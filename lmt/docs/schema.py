"""The config schema's attack budgets (``$defs.attack_NAME``) and the patterns that route an
attack label (``NAME`` or ``NAME.TAG``) to them, as YAML, from the attack classes; the
randomized-smoothing settings (``certify.smoothing``) from their dataclass."""

from __future__ import annotations

from typing import Any

import yaml

from lmt.attacks import ATTACKS
from lmt.docs.parameters import Parameter, in_repository, parameters, summary

_TYPES = {int: "integer", float: "number", bool: "boolean", str: "string", type(None): "null"}
_BOUNDS = {"ge": "minimum", "gt": "exclusiveMinimum", "le": "maximum", "lt": "exclusiveMaximum"}


def documented_attacks() -> dict[str, type]:
    """The registered attacks defined in this repository, by name (sorted)."""
    return {name: cls for name in ATTACKS.list() if in_repository(cls := ATTACKS.get(name))}


def property_schema(p: Parameter) -> dict[str, Any]:
    """The JSON Schema of one parameter: type, choices, range, default, description."""
    types = [_TYPES[t] for t in p.types]
    spec: dict[str, Any] = {"type": types[0] if len(types) == 1 else types}
    if p.choices is not None:
        spec["enum"] = list(p.choices)
    spec.update({_BOUNDS[key]: value for key, value in p.bounds.items()})
    return {**spec, "default": p.default, "description": p.doc}


def attack_def(cls: type) -> dict[str, Any]:
    """``$defs.attack_NAME``: an object holding exactly the attack's parameters."""
    return {
        "type": "object", "additionalProperties": False, "description": summary(cls),
        "properties": {p.name: property_schema(p) for p in parameters(cls)},
    }


def attack_defs() -> dict[str, Any]:
    return {f"attack_{name}": attack_def(cls) for name, cls in documented_attacks().items()}


def attack_patterns() -> dict[str, Any]:
    """``attack.attacks.patternProperties``: each attack's labels to its ``$defs`` entry."""
    return {rf"^{name}(\.|$)": {"$ref": f"#/$defs/attack_{name}"} for name in documented_attacks()}


def smoothing_schema() -> dict[str, Any]:
    """``certify.smoothing``: null (off, the default) or an object holding exactly the
    parameters of :class:`lmt.smoothing.SmoothingSettings` (omitted ones take their defaults)."""
    from lmt.smoothing import SmoothingSettings

    return {"smoothing": {
        "type": ["object", "null"], "additionalProperties": False,
        "description": summary(SmoothingSettings) + " Absent or null: off. Each omitted parameter takes its default.",
        "properties": {p.name: property_schema(p) for p in parameters(SmoothingSettings)},
    }}


def to_yaml(mapping: dict[str, Any]) -> str:
    """Block YAML, mappings of scalars on one line (as the rest of the schema is written)."""
    return yaml.safe_dump(mapping, sort_keys=False, allow_unicode=True, default_flow_style=None, width=1_000)
