"""Call arguments that do not depend on the input's values: constants of the traced graph.

A bound may need the value of an operation's other arguments (the factor of ``x * c``, the
padding of ``F.pad``). A module attribute is passed as it is; an argument the traced graph
computes from attributes (``self.w[:, None, None]``, ``self.scale.exp()``, a buffer expanded to
``x.shape``) is passed as a :class:`Constant`, evaluated anew each time a bound reads it, so it
follows the current parameters and, in training mode, is differentiable in them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import fx, nn


@dataclass(frozen=True)
class Constant:
    """An argument computed from the model's parameters and buffers only; call it for its value."""

    evaluate: Callable[[], Any]
    source: str  # the fx node that computes it, for messages

    def __call__(self) -> Any:
        return self.evaluate()

    def __repr__(self) -> str:
        return f"Constant({self.source})"


def resolve(value: Any) -> Any:
    """The value of an argument: a :class:`Constant` evaluated, anything else as it is."""
    return value() if isinstance(value, Constant) else value


def attribute(root: nn.Module, target: str) -> Any:
    """``root.a.b`` for the dotted name ``"a.b"`` (an fx ``get_attr`` target)."""
    value: Any = root
    for part in target.split("."):
        value = getattr(value, part)
    return value


def constant_argument(root: nn.Module, node: fx.Node, data: set[str]) -> Any:
    """What a bound sees for the argument ``node`` that does not depend on the input's values:
    the attribute itself for ``get_attr``, otherwise a :class:`Constant` that evaluates the
    node. A computed constant may read the *shape* of input-dependent values (``x.size(0)``):
    those are replaced by zeros of their traced shape (batch size 1), whose values it never
    reads (it would be input-dependent otherwise)."""
    if node.op == "get_attr":
        return attribute(root, str(node.target))

    def evaluate(n: fx.Node) -> Any:
        if n.name in data:
            meta = n.meta["tensor_meta"]
            return torch.zeros(meta.shape, dtype=meta.dtype)
        if n.op == "get_attr":
            return attribute(root, str(n.target))
        args, kwargs = fx.node.map_arg((n.args, n.kwargs), evaluate)
        if n.op == "call_function":
            return n.target(*args, **kwargs)
        if n.op == "call_method":
            return getattr(args[0], n.target)(*args[1:], **kwargs)
        if n.op == "call_module":
            return root.get_submodule(str(n.target))(*args, **kwargs)
        raise ValueError(f"cannot evaluate node {n.name!r} ({n.op}) as a constant")

    return Constant(lambda: evaluate(node), node.name)
