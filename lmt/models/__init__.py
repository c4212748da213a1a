"""Model registry: ``@register_model(name)`` on a builder, ``create_model(name)`` to build one.

Tests parametrise over :func:`list_models`, so every registered model is exercised.
"""

from __future__ import annotations

from typing import Callable

from torch import nn

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}
_INPUT_SHAPES: dict[str, tuple[int, ...]] = {}


def register_model(
    name: str, input_shape: tuple[int, ...]
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register a builder under ``name``; ``input_shape`` (C, H, W) is what it was designed for."""

    def decorator(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        _REGISTRY[name] = builder
        _INPUT_SHAPES[name] = tuple(input_shape)
        return builder

    return decorator


def create_model(name: str, **kwargs) -> nn.Module:
    if name not in _REGISTRY:
        raise KeyError(f"unknown model {name!r}; registered: {list_models()}")
    return _REGISTRY[name](**kwargs)


def model_input_shape(name: str) -> tuple[int, ...]:
    return _INPUT_SHAPES[name]


def list_models() -> list[str]:
    return sorted(_REGISTRY)


from lmt.models import lenet, normalize, wide_resnet, wong_kolter  # noqa: E402,F401  (registers models)
