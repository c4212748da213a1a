"""Model registry: ``@register_model(name, input_shape)`` on a builder, ``create_model(name)``
to build one.

:data:`MODELS` is a :class:`lmt.registry.Registry`; a builder takes keyword arguments
(``in_channels``, ``num_classes``) and returns an ``nn.Module``, and ``input_shape`` (C, H, W),
the shape it was designed for, is the entry's metadata. Tests parametrise over
:func:`list_models`, so every registered model is exercised.
"""

from __future__ import annotations

from typing import Any, Callable

from torch import nn

from lmt.registry import Registry

Builder = Callable[..., nn.Module]
MODELS: Registry[Builder] = Registry("model")


def register_model(name: str, input_shape: tuple[int, ...]) -> Callable[[Builder], Builder]:
    """Register a builder under ``name``; ``input_shape`` (C, H, W) is what it was designed for."""
    return MODELS.register(name, input_shape=tuple(input_shape))


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build the model registered under ``name`` (keyword arguments go to its builder)."""
    return MODELS.get(name)(**kwargs)


def model_input_shape(name: str) -> tuple[int, ...]:
    return MODELS.entry(name).metadata["input_shape"]


def list_models() -> list[str]:
    return MODELS.list()


from lmt.models import lenet, lipschitz, normalize, wide_resnet, wong_kolter  # noqa: E402,F401  (registers models)
