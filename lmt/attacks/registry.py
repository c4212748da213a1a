"""The attack registry: ``@ATTACKS.register(name)`` on an :class:`~lmt.attacks.base.Attack`
class makes it available under ``name`` (and ``name.TAG``) in configs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

from lmt.registry import Registry

if TYPE_CHECKING:
    from lmt.attacks.base import Attack

ATTACKS: Registry[type[Attack]] = Registry("attack")


def list_attacks() -> list[str]:
    """The registered attack names, sorted."""
    return ATTACKS.list()


def create_attack(label: str, params: Mapping[str, Any] | None = None) -> Attack:
    """The attack registered under ``label`` (``NAME`` or ``NAME.TAG``) with its budget
    ``params`` checked by :func:`lmt.params.check_params`: an unknown name raises
    :class:`KeyError`, an unknown parameter :class:`TypeError`, a bad value
    :class:`lmt.params.ParamError` (each naming it)."""
    return ATTACKS.params(label, params)


def registered_name(cls: type) -> str:
    """The name ``cls`` is registered under: what its budgets and results are recorded as."""
    for name, entry in ATTACKS.entries().items():
        if entry.factory is cls:
            return str(name)
    raise LookupError(f"attack class {cls.__qualname__} is not registered; decorate it with @ATTACKS.register(name)")
